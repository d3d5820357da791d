import ArgumentParser
import ChildProcess
import Foundation
import MarketDataTasks
import PostgresClient
import SampleMarket

/// `closebell bench cycle`: the full daily cycle at market scale through worker processes,
/// against the sample Polygon server with a per-request latency, under a request-rate limit;
/// its wall time beside the rate limit's lower bound (requests ÷ rate).
struct CycleBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cycle",
        abstract: "The daily cycle's wall time against a rate-limited sample API, beside the lower bound requests ÷ rate.")

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Symbols in the universe.") var symbols = 8_500
    @Option(help: "Milliseconds the sample server adds to every answer.") var latencyMs = 20.0
    @Option(help: "The API's rate limit, requests/s: the workers' polygon.requests_per_second (with the shared budget, the whole cluster's).") var rate = 100.0
    @Option(help: "Worker processes.") var workers = 1
    @Option(help: "Each worker's --concurrency.") var concurrency = 4
    @Option(help: "The cycle's volume_slots days (default: the daily cycle's own, 10).") var slotsDays: Int?
    @Option(help: "The cycle's ohlc_daily days (default: the daily cycle's own, 30).") var ohlcDays: Int?
    @Option(help: "metadata_enrich's limit per run (default: the product's, 500).") var metadataLimit: Int?
    @Option(help: "polygon.shared_budget_margin (default: the product's).") var budgetMargin: Double?
    @Option(help: "Seconds to wait for the cycle to finish.") var timeout = 3_600.0

    func run() async throws {
        let bench = try await BenchDatabase.prepare(database, name: "closebell_bench")
        defer { bench.finish() }
        let connection = try await PostgresConnection.connect(bench.url, applicationName: "closebell bench")
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-bench-cycle-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }

        let data = SampleMarketData(symbols: symbols)
        let apiKey = "bench-\(UInt32.random(in: 0...UInt32.max))"
        let server = try SamplePolygonServer.start(data: data, options: SampleServerOptions(apiKey: apiKey, latency: latencyMs / 1000))
        defer { server.stop() }
        try await SampleUniverse.seed(connection, symbols: data.symbols)
        var knobs: [String] = []
        for (task, days) in [("volume_slots", slotsDays), ("ohlc_daily", ohlcDays)] {
            guard let days else { continue }
            try await connection.query("""
                UPDATE maintenance_cycle_tasks SET args = args || jsonb_build_object('days', $2::int)
                 WHERE cycle = 'daily' AND task = $1
                """, [task, days])
            knobs.append("\(task) days \(days)")
        }

        // One budget for the cluster (polygon.shared_budget, on by default): every worker
        // process gets the API's rate, and the budget in PostgreSQL keeps their sum within it.
        var config = "polygon:\n  requests_per_second: \(rate)\n"
        if let budgetMargin {
            config += "  shared_budget_margin: \(budgetMargin)\n"
            knobs.append("shared_budget_margin \(budgetMargin)")
        }
        if let metadataLimit {
            config += "market_data:\n  metadata_limit: \(metadataLimit)\n"
            knobs.append("metadata_limit \(metadataLimit)")
        }
        let configPath = scratch.appendingPathComponent("closebell.yaml").path
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let environment: [String: String?] = [
            "DATABASE_URL": bench.url, "POLYGON_BASE_URL": server.baseURL.absoluteString, "POLYGON_API_KEY": apiKey,
            "CLOSEBELL_BACKUP_DIR": scratch.appendingPathComponent("backups").path, "CLOSEBELL_CONFIG": configPath,
        ]
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let children = try (0..<max(1, workers)).map { index in
            try ChildProcess.spawn(executable, ["worker", "--concurrency", String(concurrency), "--log-format", "json"],
                                   environment: environment, outputPath: scratch.appendingPathComponent("worker-\(index).log").path)
        }
        var stopped = false
        defer { if !stopped { for child in children { child.signal(SIGKILL); child.wait() } } }
        print(String(format: "daily cycle: %d symbols, sample server latency %.0f ms, rate limit %.0f req/s, %d worker process(es) × concurrency %d%@",
                     symbols, latencyMs, rate, workers, concurrency, knobs.isEmpty ? "" : "; " + knobs.joined(separator: ", ")))
        try await waitForWorkers(connection)

        let start = DispatchTime.now().uptimeNanoseconds
        let runID: Int64 = try await connection.query(
            "SELECT run_id FROM maintenance_enqueue_cycle('daily', NULL, true)").first!.decode("run_id")
        var state = "running"
        while state == "running" {
            try await Task.sleep(nanoseconds: 100_000_000)
            state = try await connection.query("SELECT state FROM maintenance_cycle_runs WHERE id = $1", [runID]).first?["state"] ?? "?"
            if Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 > timeout { throw CommandFailure("the cycle did not finish within \(timeout) s") }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let peaks = children.map { QueueBench.peakRSSKiB(pid: $0.pid) }
        let received = server.requests
        let requests = received.count
        let bound = Double(requests) / rate
        let refused = received.filter { $0.status == 429 }.count
        let tasks = try await connection.query("""
            SELECT task, state, extract(epoch FROM finished_at - started_at)::float8 AS seconds
            FROM maintenance_jobs WHERE run_id = $1 ORDER BY id
            """, [runID])
        let size: Int64 = try await connection.query("SELECT pg_database_size(current_database()) AS b").first!.decode("b")
        await connection.close()

        print(String(format: "wall time %.1f s (state %@); %d requests; rate-limit lower bound %.1f s; ratio %.2f",
                     seconds, state, requests, bound, bound > 0 ? seconds / bound : 0))
        print(String(format: "busiest second at the server: %d requests (limit %.0f); %d answered 429",
                     Self.busiestSecond(received.map(\.receivedAt)), rate, refused))
        print("tasks: " + tasks.map { row in
            "\(row["task"] ?? "?") \(row["state"] ?? "?") \(String(format: "%.1f s", Double(row["seconds"] ?? "") ?? 0))"
        }.joined(separator: ", "))
        print("peak RSS per worker: " + peaks.map { String(format: "%.1f MiB", Double($0) / 1024) }.joined(separator: ", "))
        print(String(format: "database size after: %.1f MiB", Double(size) / 1_048_576))
        for child in children { child.signal(SIGTERM) }
        for child in children where child.wait(seconds: 30) == nil { child.signal(SIGKILL); child.wait() }
        stopped = true
    }

    /// The most arrivals in any one-second window (sliding), the way an API counts its rate.
    static func busiestSecond(_ arrivals: [ContinuousClock.Instant]) -> Int {
        let sorted = arrivals.sorted()
        var busiest = 0, first = 0
        for (index, arrival) in sorted.enumerated() {
            while arrival - sorted[first] >= .seconds(1) { first += 1 }
            busiest = max(busiest, index - first + 1)
        }
        return busiest
    }

    /// Waits until every worker has its claim connection open.
    private func waitForWorkers(_ connection: PostgresConnection) async throws {
        for _ in 0..<600 {
            let ready: Int = try await connection.query("""
                SELECT count(*) AS n FROM pg_stat_activity
                WHERE datname = current_database() AND application_name = 'closebell worker (claim)'
                """).first!.decode("n")
            if ready >= workers { return }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        throw CommandFailure("workers did not connect within 30 s")
    }
}
