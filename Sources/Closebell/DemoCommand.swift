import ArgumentParser
import ChildProcess
import Foundation
import JobQueue
import LocalCluster
import MarketDataTasks
import PostgresClient
import SampleMarket
import SchemaMigrations

/// `closebell demo`: a full daily cycle on a new machine, with no database and no API key.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a full daily cycle against a private PostgreSQL cluster and locally served sample market data.",
        discussion: """
            Starts (or reuses) a private cluster in DIR/cluster, recreates the database
            closebell_demo, fills a sample universe, serves deterministic Polygon-style market
            data on 127.0.0.1, enqueues the daily cycle, runs it with two worker processes and
            prints a summary. Backups go to DIR/backups, worker logs to DIR/logs.
            The private PostgreSQL keeps running afterwards, for psql; `closebell demo stop`
            stops it (or give --stop-cluster).
            """,
        subcommands: [DemoStopCommand.self])

    @OptionGroup var folder: DemoFolder
    private var dir: String { folder.dir }

    @Option(help: "Symbols in the sample universe.")
    var symbols = 25

    @Option(help: "Worker processes.")
    var workers = 2

    @Flag(help: "Stop the private cluster when done (it is kept running by default, for psql).")
    var stopCluster = false

    func run() async throws {
        let base = URL(fileURLWithPath: dir).standardizedFileURL
        let logs = base.appendingPathComponent("logs"), backups = base.appendingPathComponent("backups")
        try? FileManager.default.removeItem(at: logs)
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        let started = Date()

        let cluster = try LocalCluster(directory: base.appendingPathComponent("cluster"))
        step("PostgreSQL: private cluster in \(cluster.directory.path), port \(cluster.port)")
        try cluster.start()
        try cluster.dropDatabase("closebell_demo")
        try cluster.createDatabaseIfMissing("closebell_demo")
        let url = cluster.url(database: "closebell_demo")
        let connection = try await PostgresConnection.connect(url, applicationName: "closebell demo")
        let applied = try await Migrator(directory: Migrator.locateDirectory()).migrate(connection)
        step("database closebell_demo: \(applied.count) migrations applied")

        let data = SampleMarketData(symbols: symbols)
        let apiKey = "demo-key-\(UInt32.random(in: 0...UInt32.max))"
        let server = try SamplePolygonServer.start(data: data, options: SampleServerOptions(apiKey: apiKey))
        defer { server.stop() }
        let added = try await SampleUniverse.seed(connection, symbols: data.symbols)
        step("sample market data: \(added) symbols served at \(server.baseURL.absoluteString)")

        let cycle = try await connection.query(
            "SELECT run_id, created, period::text AS period FROM maintenance_enqueue_cycle('daily', NULL, true)").first!
        let runID: Int64 = try cycle.decode("run_id")
        step("daily cycle run \(runID) enqueued for \(cycle["period"] ?? "today")")

        var environment = [
            "DATABASE_URL": url, "POLYGON_BASE_URL": server.baseURL.absoluteString, "POLYGON_API_KEY": apiKey,
            "CLOSEBELL_BACKUP_DIR": backups.path,
        ]
        environment["CLOSEBELL_CONFIG"] = ""
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var children: [ChildProcess] = []
        for i in 1...max(1, workers) {
            children.append(try ChildProcess.spawn(
                executable, ["worker", "--concurrency", "3", "--log-format", "json", "--grace", "10"],
                environment: environment.mapValues { Optional($0) }, outputPath: logs.appendingPathComponent("worker-\(i).log").path))
        }
        step("\(children.count) workers started (logs in \(logs.path))")

        var reportedStage = 0
        let deadline = Date().addingTimeInterval(900)
        var state = "running"
        while Date() < deadline {
            let run = try await connection.query("SELECT state, current_stage FROM maintenance_cycle_runs WHERE id = $1", [runID]).first!
            state = run["state"] ?? "?"
            let stage = Int(run["current_stage"] ?? "0") ?? 0
            // Stages can start and finish between two looks: report every one in order.
            while reportedStage < stage {
                reportedStage += 1
                let stageJobs = Set(try await connection.query(
                    "SELECT (jsonb_array_elements(s -> 'jobs'))::bigint AS id FROM maintenance_cycle_runs r, jsonb_array_elements(r.stages) s WHERE r.id = $1 AND (s ->> 'stage')::int = $2",
                    [runID, reportedStage]).map { try $0.decode("id", as: Int64.self) })
                let tasks = try await connection.withSession { try QueueStore.runJobs($0, runIDs: [runID]) }
                    .filter { stageJobs.contains($0.id) }.map(\.task)
                if !tasks.isEmpty { step("stage \(reportedStage) started: \(tasks.joined(separator: ", "))") }
            }
            if state != "running" { break }
            try await Task.sleep(nanoseconds: 300_000_000)
        }
        // The workers drain (SIGTERM) before the summary, and long before the cluster stops.
        for child in children { child.signal(SIGTERM) }
        for child in children { child.wait() }
        try await printSummary(connection, runID: runID, state: state, seconds: Date().timeIntervalSince(started), url: url)
        await connection.close()
        if stopCluster { try? cluster.stop() }
        guard state == "succeeded" else {
            throw CommandFailure("the daily cycle ended \(state); see `closebell jobs list --run \(runID)` and \(logs.path)")
        }
    }

    private func step(_ text: String) {
        print("• \(text)")
        fflush(nil)
    }

    private func printSummary(_ connection: PostgresConnection, runID: Int64, state: String, seconds: Double, url: String) async throws {
        print("\nDaily cycle run \(runID): \(state.uppercased()) in \(Output.duration(seconds))\n")
        let jobs = try await connection.withSession { try QueueStore.runJobs($0, runIDs: [runID]) }
        Output.table(["TASK", "STATUS", "ATTEMPTS", "TIME", "DETAIL"], jobs.map { job in
            let detail = job.state == .succeeded ? Self.describe(result: job.resultJSON) : String((job.lastError ?? "").prefix(90))
            return [job.task, job.state.rawValue, "\(job.attempts)", job.seconds.map(Output.duration) ?? "-", detail]
        })
        print("\nTables")
        let sizes = try await connection.query("""
            SELECT t AS name, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I', t), false, true, '')))[1]::text AS rows,
                   pg_size_pretty(pg_total_relation_size(t::regclass)) AS size
            FROM unnest(ARRAY['ticker_universe', 'market_data_daily', 'volume_slots', 'ticker_metadata', 'ticker_volume_stats',
                               'ticker_earnings', 'market_data_completeness', 'market_data_quarantine', 'maintenance_jobs']) AS t
            WHERE to_regclass(t) IS NOT NULL
            """)
        Output.table(["TABLE", "ROWS", "SIZE"], sizes.map { [$0["name"] ?? "", $0["rows"] ?? "", $0["size"] ?? ""] })
        if let upcoming = try await connection.query("""
            SELECT count(*) AS n, string_agg(symbol || ' ' || date || ' ' || replace(time_of_day, '_', ' '), ', ') FILTER (WHERE rn <= 3) AS first
              FROM (SELECT *, row_number() OVER () AS rn FROM upcoming_earnings(14)) u
            """).first, let count = upcoming["n"] {
            print("\nEarnings in the next 14 days (upcoming_earnings(14)): \(count)" + (upcoming["first"].map { ", first: \($0)" } ?? ""))
        }
        if let backup = jobs.first(where: { $0.task == "backup" && $0.state == .succeeded }), let path = backup.figures.path {
            print("\nBackup: \(path) (\(ByteCountFormatter.string(fromByteCount: backup.figures.bytes ?? 0, countStyle: .file)))")
        }
        defer { fflush(nil) }
        if stopCluster {
            print("\nThe cluster is stopped; `closebell demo` starts it again.")
            return
        }
        print("\nExplore: psql '\(url)'   ·   closebell status --database-url '\(url)'")
        print("The private PostgreSQL keeps running; stop it with: closebell demo stop --dir '\(dir)'")
    }

    /// A one-line summary of a task's result JSON: its standard fields (`ReportedFields`, the
    /// keys the report and the metrics read), then what some tasks add.
    static func describe(result: String?) -> String {
        guard let object = Output.parse(result) as? [String: Any], let standard = result.flatMap(ReportedFields.init(json:)) else { return "" }
        var parts: [String] = []
        func number(_ key: String) -> Int64? { (object[key] as? NSNumber)?.int64Value }
        if let rows = standard.rowsWritten { parts.append("\(rows) rows written") }
        if let written = number("symbols_written") { parts.append("\(written) symbols updated") }
        if let units = object["units"] as? [String: Any] ?? object["symbols"] as? [String: Any] {
            let ok = (units["ok"] as? NSNumber)?.intValue ?? 0, failed = (units["failed"] as? NSNumber)?.intValue ?? 0
            parts.append("\(ok) ok, \(failed) failed")
        }
        if let removed = standard.totalRowsRemoved { parts.append("\(removed) rows removed") }
        if let freed = standard.bytesFreed { parts.append("\(ByteCountFormatter.string(fromByteCount: freed, countStyle: .file)) freed") }
        if let bytes = standard.bytes, standard.path != nil { parts.append("\(ByteCountFormatter.string(fromByteCount: bytes, countStyle: .file)) backup") }
        if let recorded = object["recorded_on"] as? String, let tables = object["tables"] as? [Any] {
            parts.append("\(tables.count) table sizes recorded for \(recorded)")
        }
        if let history = number("history_symbols") { parts.append("history loaded for \(history) symbols") }
        if let quarantined = number("quarantined") {
            var reasons: [String: Int] = [:]
            for table in (object["tables"] as? [String: [String: Any]] ?? [:]).values {
                for (reason, count) in table["reasons"] as? [String: NSNumber] ?? [:] { reasons[reason, default: 0] += count.intValue }
            }
            let why = reasons.keys.sorted().map { "\($0): \(reasons[$0]!)" }.joined(separator: ", ")
            parts.append("\(quarantined) rows quarantined" + (why.isEmpty ? "" : " (\(why))"))
        }
        if object["task"] as? String == "completeness", let tables = object["tables"] as? [String: [String: Any]] {
            let shares = tables.keys.sorted().compactMap { table in
                (tables[table]?["percent"] as? NSNumber).map { "\(table) \($0)%" }
            }
            parts.append(shares.joined(separator: ", ") + " complete")
        }
        if let skipped = object["skipped"] as? Bool, skipped { parts.append("skipped: \(object["reason"] as? String ?? "")") }
        return parts.joined(separator: "; ")
    }
}

/// The demo's folder, shared by `demo` and `demo stop`.
struct DemoFolder: ParsableArguments {
    @Option(help: "Folder for the private cluster, backups and logs.")
    var dir = ".closebell"
}

/// `closebell demo stop`: stops the private cluster an earlier demo left running.
struct DemoStopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Stop the private PostgreSQL cluster that `closebell demo` left running (its data stays in DIR/cluster).")

    @OptionGroup var demoFolder: DemoFolder

    func run() async throws {
        let folder = URL(fileURLWithPath: demoFolder.dir).standardizedFileURL.appendingPathComponent("cluster")
        guard FileManager.default.fileExists(atPath: folder.appendingPathComponent("data/PG_VERSION").path) else {
            print("no demo cluster in \(folder.path); nothing to stop")
            return
        }
        let cluster = try LocalCluster(directory: folder)
        guard cluster.isRunning else {
            print("the demo cluster in \(folder.path) is not running")
            return
        }
        try cluster.stop()
        print("stopped the demo cluster in \(folder.path) (port \(cluster.port)); `closebell demo` starts it again")
    }
}
