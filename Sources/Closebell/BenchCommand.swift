import ArgumentParser
import ChildProcess
import Backup
import Benchmarks
import MaintenanceTasks
import MarketDataTasks
import Foundation
import Logging
import JobQueue
import LocalCluster
import PostgresClient
import SchemaMigrations

/// `closebell bench …`: benchmarks that print figures beside a baseline measured in the same run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that print figures beside a baseline measured in the same run.",
        subcommands: [QueueBench.self, LogBench.self, CycleBench.self, BackupBench.self, RetentionBench.self, IngestBench.self])
}

/// Where a benchmark runs: the given database, or a private cluster made for the run.
struct BenchDatabase {
    let url: String
    let cluster: LocalCluster?

    /// Uses `--database-url`/`DATABASE_URL` when set (the benchmark database is created there
    /// with the given name), else starts a private cluster in a temporary folder.
    static func prepare(_ options: DatabaseOptions, name: String) async throws -> BenchDatabase {
        let conninfo = options.conninfo
        var cluster: LocalCluster?
        let adminURL: String
        if conninfo.isEmpty {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-bench-\(getpid())")
            let created = try LocalCluster(directory: dir)
            print("starting a private PostgreSQL cluster in \(dir.path) (fsync and synchronous_commit on)")
            try created.start()
            cluster = created
            adminURL = created.url(database: "postgres")
        } else {
            adminURL = conninfo
        }
        let admin = try await PostgresConnection.connect(adminURL, applicationName: "closebell bench")
        try await admin.execute("DROP DATABASE IF EXISTS \(PostgresSession.quoteIdentifier(name)) WITH (FORCE)")
        try await admin.execute("CREATE DATABASE \(PostgresSession.quoteIdentifier(name))")
        await admin.close()
        let url = Self.replaceDatabase(in: adminURL, with: name)
        let connection = try await PostgresConnection.connect(url, applicationName: "closebell bench")
        _ = try await Migrator(directory: Migrator.locateDirectory()).migrate(connection)
        await connection.close()
        return BenchDatabase(url: url, cluster: cluster)
    }

    /// Stops the private cluster, if one was started.
    func finish() { cluster?.destroy() }

    /// `url` pointing at database `name` (URLs and key=value strings).
    static func replaceDatabase(in conninfo: String, with name: String) -> String {
        if conninfo.hasPrefix("postgres://") || conninfo.hasPrefix("postgresql://") {
            guard var components = URLComponents(string: conninfo) else { return conninfo }
            components.path = "/" + name
            return components.string ?? conninfo
        }
        return conninfo + " dbname=\(name)"
    }
}

/// `closebell bench queue`: end-to-end throughput and latency of noop jobs through real worker
/// processes at the product's default log level, beside pgbench running the same claim and
/// completion statements.
struct QueueBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Jobs/s (wall clock) and enqueue-to-start latency through worker processes, beside pgbench's ceiling.")

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Worker processes.") var workers = 4
    @Option(help: "The high concurrency measured beside the default one.") var concurrency = 64
    @Option(help: "Jobs drained for each throughput figure.") var jobs = 20_000
    @Option(help: "Drains of each configuration; the minimum and median are printed.") var repeats = 3
    @Option(help: "Jobs enqueued one by one (single INSERTs) for the latency figure.") var latencyJobs = 300
    @Option(help: "Milliseconds between those INSERTs.") var latencyIntervalMs = 20.0
    @Option(help: "Jobs claimed per pgbench transaction (default: half the high concurrency, capped at 32: what a busy worker claims at once).")
    var pgbenchBatch: Int?
    @Option(help: "The workers' --log-level (default: the product's default, info).") var logLevel: String?
    @Option(help: "Run the workers of another closebell build (a baseline; give it its schema with CLOSEBELL_MIGRATIONS_DIR).")
    var workerBinary: String?

    private var batch: Int { pgbenchBatch ?? max(1, min(concurrency, 64) / 2) }

    func run() async throws {
        let bench = try await BenchDatabase.prepare(database, name: "closebell_bench")
        defer { bench.finish() }
        let connection = try await PostgresConnection.connect(bench.url, applicationName: "closebell bench")
        let settings = try await connection.query("SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sc").first!
        let defaultConcurrency = WorkerConfiguration(workerID: "bench").concurrency
        let logs = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-bench-logs-\(getpid())")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: logs) }
        print("database: fsync=\(settings["fsync"] ?? "?") synchronous_commit=\(settings["sc"] ?? "?"); "
              + "\(workers) worker processes\(workerBinary.map { " of \($0)" } ?? ""); log level \(logLevel ?? "info (default)"), JSON lines to a file per worker")

        // 1. Throughput: N jobs become due at one commit; clocked until the last completion is committed.
        var best: [Int: Double] = [:]
        for workerConcurrency in Array(Set([defaultConcurrency, concurrency])).sorted() {
            var rates: [Double] = []
            var rss: [Int] = []
            for round in 0..<max(1, repeats) {
                let drain = try await measureDrain(bench.url, connection, concurrency: workerConcurrency,
                                                   logDirectory: logs.appendingPathComponent("c\(workerConcurrency)-r\(round)").path)
                rates.append(drain.jobsPerSecond)
                rss = rss.isEmpty ? drain.peakRSSKiB : zip(rss, drain.peakRSSKiB).map { max($0, $1) }
                if !drain.allOnce { print("WARNING: not every job ran exactly once and succeeded") }
            }
            let sorted = rates.sorted()
            best[workerConcurrency] = sorted.last
            print(String(format: "throughput, %d × concurrency %d%@: min %.0f, median %.0f, max %.0f jobs/s (%d jobs, wall clock from due to last commit, %d runs); peak RSS per worker: %@",
                         workers, workerConcurrency, workerConcurrency == defaultConcurrency ? " (default)" : "",
                         sorted[0], sorted[sorted.count / 2], sorted[sorted.count - 1], jobs, sorted.count,
                         rss.map { String(format: "%.1f MiB", Double($0) / 1024) }.joined(separator: ", ")))
        }

        // 2. Latency: one idle worker at the default concurrency, single INSERTs at an interval.
        try await connection.execute("TRUNCATE maintenance_jobs")
        let probe = try startWorkers(bench.url, count: 1, concurrency: defaultConcurrency, logDirectory: logs.appendingPathComponent("latency").path)
        try await waitUntilConnected(connection, count: 1)
        for _ in 0..<latencyJobs {
            try await connection.execute("INSERT INTO maintenance_jobs (task) VALUES ('noop')")
            try await Task.sleep(nanoseconds: UInt64(latencyIntervalMs * 1_000_000))
        }
        try await waitFor(connection, succeeded: latencyJobs, timeout: 120)
        let latency = try await connection.query("""
            SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at) * 1000) AS p
            FROM maintenance_jobs
            """).first!["p"] ?? "{}"
        let percentiles = latency.trimmingCharacters(in: CharacterSet(charactersIn: "{}")).split(separator: ",").compactMap { Double($0) }
        if percentiles.count == 3 {
            print(String(format: "enqueue-to-start latency, 1 idle worker, %d single INSERTs %.0f ms apart: p50 %.2f ms, p95 %.2f ms, p99 %.2f ms",
                         latencyJobs, latencyIntervalMs, percentiles[0], percentiles[1], percentiles[2]))
        }
        for child in probe { child.signal(SIGTERM) }
        for child in probe { child.wait() }

        // 3. Ceiling: pgbench running the claim and completion statements with no worker.
        // The best of three runs: the ceiling is what the database can do at its best.
        var runs: [Double] = []
        for _ in 0..<3 {
            try await connection.execute("TRUNCATE maintenance_jobs")
            try await connection.query("INSERT INTO maintenance_jobs (task) SELECT 'noop' FROM generate_series(1, $1)", [jobs])
            try await connection.execute("ANALYZE maintenance_jobs")
            runs.append(try runPgbench(bench))
        }
        await connection.close()
        let ceiling = runs.max() ?? 0
        print(String(format: "ceiling: pgbench, %d clients, claim %d + complete per transaction pair: %.0f jobs/s (best of %@)",
                     workers, batch, ceiling, runs.map { String(format: "%.0f", $0) }.joined(separator: ", ")))
        for (workerConcurrency, rate) in best.sorted(by: { $0.key < $1.key }) {
            print(String(format: "closebell %d × %d reaches %.0f%% of the ceiling (best run)", workers, workerConcurrency, 100 * rate / ceiling))
        }
    }

    /// What one drain measured.
    private struct Drain {
        let jobsPerSecond: Double
        let allOnce: Bool
        let peakRSSKiB: [Int]
    }

    /// Starts idle workers, makes `jobs` jobs due in one commit, and clocks until no job is
    /// waiting or running; reads each worker's peak RSS before stopping it.
    private func measureDrain(_ url: String, _ connection: PostgresConnection, concurrency: Int, logDirectory: String) async throws -> Drain {
        try await connection.execute("TRUNCATE maintenance_jobs")
        try await connection.execute("VACUUM ANALYZE maintenance_jobs")
        let children = try startWorkers(url, count: workers, concurrency: concurrency, logDirectory: logDirectory)
        try await waitUntilConnected(connection, count: workers)
        try await connection.execute("BEGIN")
        try await connection.query("INSERT INTO maintenance_jobs (task) SELECT 'noop' FROM generate_series(1, $1)", [jobs])
        // The jobs become due (visible) at this commit; the clock starts before it is sent.
        let start = DispatchTime.now().uptimeNanoseconds
        try await connection.execute("COMMIT")
        while true {
            // Cheap while the queue churns: each condition reads one partial index.
            let idle = try await connection.withSession { try QueueStore.isIdle($0) }
            if idle { break }
            if DispatchTime.now().uptimeNanoseconds - start > 600_000_000_000 { throw CommandFailure("benchmark timed out draining \(jobs) jobs") }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let peaks = children.map { Self.peakRSSKiB(pid: $0.pid) }
        for child in children { child.signal(SIGTERM) }
        for child in children { child.wait() }
        let once = try await connection.withSession { try QueueStore.count($0, state: .succeeded, attempts: 1) }
        return Drain(jobsPerSecond: Double(jobs) / seconds, allOnce: once == jobs, peakRSSKiB: peaks)
    }

    /// `VmHWM` of a running process, in KiB (0 when it cannot be read).
    static func peakRSSKiB(pid: pid_t) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return 0 }
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    private func startWorkers(_ url: String, count: Int, concurrency: Int, logDirectory: String) throws -> [ChildProcess] {
        let executable = workerBinary ?? (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        let level = logLevel.map { ["--log-level", $0] } ?? []
        return try (0..<count).map { index in
            try ChildProcess.spawn(executable, ["worker", "--concurrency", String(concurrency), "--log-format", "json"] + level,
                                   environment: ["DATABASE_URL": url], outputPath: "\(logDirectory)/worker-\(index).log")
        }
    }

    /// Waits until `count` workers have their claim and listen connections open.
    private func waitUntilConnected(_ connection: PostgresConnection, count: Int) async throws {
        for _ in 0..<600 {
            let ready: Int = try await connection.query("""
                SELECT least(count(*) FILTER (WHERE application_name = 'closebell worker (claim)'),
                             count(*) FILTER (WHERE application_name = 'closebell worker (listen)')) AS n
                FROM pg_stat_activity WHERE datname = current_database()
                """).first!.decode("n")
            if ready >= count {
                try await Task.sleep(nanoseconds: 300_000_000)
                return
            }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        throw CommandFailure("workers did not connect within 30 s")
    }

    private func waitFor(_ connection: PostgresConnection, succeeded count: Int, timeout: Double) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            // Cheap while the queue churns: both conditions use the partial indexes.
            let idle = try await connection.withSession { try QueueStore.isIdle($0) }
            if idle {
                let done = try await connection.withSession { try QueueStore.count($0, state: .succeeded) }
                if done >= count { return }
            }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw CommandFailure("benchmark timed out waiting for \(count) jobs")
    }

    /// Runs pgbench with a script that claims `batch` jobs in one transaction and
    /// completes them in a second, like a worker; returns jobs per second.
    private func runPgbench(_ bench: BenchDatabase) throws -> Double {
        // The states are spelled by JobState, as QueueStore.claim and QueueStore.complete use them.
        let (available, running, succeeded) = (JobState.available.rawValue, JobState.running.rawValue, JobState.succeeded.rawValue)
        let script = """
            WITH picked AS (SELECT id FROM maintenance_jobs WHERE state = '\(available)' AND queue = 'default' AND run_at <= now() ORDER BY priority DESC, run_at, id LIMIT \(batch) FOR UPDATE SKIP LOCKED), claimed AS (UPDATE maintenance_jobs j SET state = '\(running)', attempts = j.attempts + 1, locked_by = 'pgbench-' || :client_id, lease_expires_at = now() + interval '60 seconds', heartbeat_at = now(), started_at = now() FROM picked WHERE j.id = picked.id RETURNING j.id, j.attempts) SELECT coalesce(array_agg(id), '{}') AS ids, coalesce(array_agg(attempts), '{}') AS attempts FROM claimed \\gset
            UPDATE maintenance_jobs j SET state = '\(succeeded)', finished_at = now(), result = c.result, locked_by = NULL, lease_expires_at = NULL FROM unnest(':ids'::bigint[], ':attempts'::int[], array_fill('{}'::jsonb, ARRAY[cardinality(':ids'::bigint[])])) AS c(id, attempt, result) WHERE j.id = c.id AND j.attempts = c.attempt AND j.locked_by = 'pgbench-' || :client_id AND j.state = '\(running)';

            """
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-pgbench-\(getpid()).sql").path
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let perClient = max(1, jobs / batch / workers)
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-pgbench-\(getpid()).out").path
        defer { unlink(output) }
        let pgbench = bench.cluster?.programPath("pgbench") ?? "pgbench"
        unlink(output)
        let pgbenchRun = try ChildProcess.spawn(
            pgbench, ["-n", "-c", String(workers), "-j", String(workers), "-t", String(perClient), "-f", path, bench.url], outputPath: output)
        pgbenchRun.wait()
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
              let tps = Double(line.dropFirst(6).split(separator: " ").first ?? "") else {
            throw CommandFailure("pgbench failed: \(text.suffix(500))")
        }
        return tps * Double(batch)
    }
}


/// `closebell bench backup`: pg_dump | gzip throughput beside `pg_dump > /dev/null`.
struct BackupBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Backup throughput (MB/s of database) beside pg_dump > /dev/null alone.")

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Rows of generated data (about 100 bytes each) to back up.") var rows = 2_000_000

    func run() async throws {
        let bench = try await BenchDatabase.prepare(database, name: "closebell_bench")
        defer { bench.finish() }
        let connection = try await PostgresConnection.connect(bench.url, applicationName: "closebell bench")
        try await connection.query("""
            CREATE TABLE bench_rows AS
            SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b, now() - g * interval '1 second' AS at, (g % 1000)::numeric / 7 AS v
            FROM generate_series(1, $1) AS g
            """, [rows])
        await connection.close()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-bench-backups-\(getpid())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let report = try await BackupBenchmark.run(conninfo: bench.url, directory: directory)
        print(report.description)
    }
}

/// `closebell bench retention`: batched retention deletes beside one unbatched DELETE.
struct RetentionBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retention", abstract: "Batched retention delete throughput (rows/s) beside a single unbatched DELETE.")

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Rows loaded (and then deleted) for each measurement.") var rows = 2_000_000
    @Option(help: "Rows per batch.") var batchSize = 10_000

    func run() async throws {
        let bench = try await BenchDatabase.prepare(database, name: "closebell_bench")
        defer { bench.finish() }
        let report = try await RetentionBenchmark.run(conninfo: bench.url, rows: rows, batchSize: batchSize)
        print(report.summary)
    }
}

/// `closebell bench ingest`: the market-data write path beside `psql \\copy`, and a cycle's
/// wall time against a rate-limited local API beside the limit's lower bound.
struct IngestBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest", abstract: "Market-data ingest rows/s beside psql \\copy; API-bound run time beside its lower bound.")

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Symbols of daily bars (a full-market day is about 11,000).") var dailySymbols = 11_000
    @Option(help: "Symbols of minute bars.") var minuteSymbols = 300
    @Option(help: "Symbols of the API run against the sample server (0 skips it).") var apiSymbols = 300
    @Option(help: "Measurements of each pair behind the ratios to \\copy (interleaved; the best of each is kept).") var repeats = 3

    func run() async throws {
        let bench = try await BenchDatabase.prepare(database, name: "closebell_bench")
        defer { bench.finish() }
        let report = try await IngestBenchmark.run(conninfo: bench.url, dailySymbols: dailySymbols, minuteSymbols: minuteSymbols,
                                                  api: IngestBenchmark.APIRunOptions(symbols: apiSymbols), repeats: repeats)
        print(report.text)
    }
}

/// `closebell bench log`: nanoseconds per log line through the product's handler, beside a
/// logger whose handler discards lines (the cost of swift-log itself) and one `write(2)` per line.
struct LogBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log", abstract: "Nanoseconds per log line (JSON and text), beside a discarding handler and write(2) per line.")

    @Option(help: "Lines per measurement.") var lines = 200_000
    @Option(help: "Measurements; the minimum and median are printed.") var repeats = 5
    @Option(help: "Where the lines go.") var output = "/dev/null"

    func run() throws {
        let descriptor = open(output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw CommandFailure("cannot open \(output): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let sink = LogSink(descriptor: descriptor)
        print("\(lines) lines × \(repeats) runs to \(output); a line like the worker's task_completed (5 metadata keys)")
        for format in LineLogHandler.Format.allCases {
            let logger = jobLogger(Logger(label: "closebell.worker") { LineLogHandler(label: $0, format: format, sink: sink) })
            report("\(format.rawValue) line", measure { for _ in 0..<lines { logger.info("task_completed", metadata: ["duration_s": .stringConvertible(0.0012)]) } })
            sink.flush()
        }
        let discarding = jobLogger(Logger(label: "closebell.worker") { _ in DiscardingHandler() })
        report("baseline: discarding handler (swift-log's own cost)", measure {
            for _ in 0..<lines { discarding.info("task_completed", metadata: ["duration_s": .stringConvertible(0.0012)]) }
        })
        let sample = Array(#"{"ts":"2026-01-02T21:00:00.123456Z","level":"info","msg":"task_completed","event":"task_completed","logger":"closebell.worker","attempt":1,"duration_s":0.0012,"job_id":123456,"task":"noop","worker":"host:1234:abcd"}\#n"#.utf8)
        report("baseline: one write(2) per line", measure {
            for _ in 0..<lines { _ = sample.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) } }
        })
    }

    private func jobLogger(_ base: Logger) -> Logger {
        var logger = base
        logger[metadataKey: "worker"] = "host:1234:abcd"
        logger[metadataKey: "job_id"] = "123456"
        logger[metadataKey: "task"] = "noop"
        logger[metadataKey: "attempt"] = "1"
        return logger
    }

    /// Nanoseconds per line of each run.
    private func measure(_ body: () -> Void) -> [Double] {
        (0..<max(1, repeats)).map { _ in
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(max(1, lines))
        }
    }

    private func report(_ name: String, _ runs: [Double]) {
        let sorted = runs.sorted()
        print(String(format: "%@: min %.0f ns/line, median %.0f ns/line", name, sorted[0], sorted[sorted.count / 2]))
    }
}

/// A handler at info level that drops every line: what swift-log costs before any handler work.
private struct DiscardingHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {}
}
