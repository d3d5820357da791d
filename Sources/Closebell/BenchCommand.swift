import ArgumentParser
import ChildProcess
import Backup
import MaintenanceTasks
import MarketDataTasks
import Foundation
import JobQueue
import LocalCluster
import PostgresClient
import SchemaMigrations

/// `closebell bench …`: benchmarks that print figures beside a baseline measured in the same run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that print figures beside a baseline measured in the same run.",
        subcommands: [QueueBench.self, BackupBench.self, RetentionBench.self, IngestBench.self])
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
/// processes, beside pgbench running the same claim and completion statements.
struct QueueBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Jobs/s and enqueue-to-start latency through worker processes, beside pgbench's ceiling.")

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Worker processes.") var workers = 4
    @Option(help: "Concurrency of each worker.") var concurrency = 64
    @Option(help: "Jobs drained for the throughput figure.") var jobs = 20_000
    @Option(help: "Jobs enqueued one by one for the latency figure.") var latencyJobs = 3_000
    @Option(help: "Enqueue rate (jobs/s) for the latency figure.") var rate = 1_000
    @Option(help: "Jobs claimed per pgbench transaction.") var pgbenchBatch = 10

    func run() async throws {
        let bench = try await BenchDatabase.prepare(database, name: "closebell_bench")
        defer { bench.finish() }
        let connection = try await PostgresConnection.connect(bench.url, applicationName: "closebell bench")
        let settings = try await connection.query("SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sc").first!
        print("database: fsync=\(settings["fsync"] ?? "?") synchronous_commit=\(settings["sc"] ?? "?"); \(workers) workers × concurrency \(concurrency)")

        // 1. Throughput: a backlog of N jobs drained by the worker processes.
        try await connection.execute("TRUNCATE maintenance_jobs")
        try await connection.query("INSERT INTO maintenance_jobs (task) SELECT 'noop' FROM generate_series(1, $1)", [jobs])
        try await connection.execute("ANALYZE maintenance_jobs")
        let children = try startWorkers(bench.url)
        try await waitFor(connection, succeeded: jobs, timeout: 600)
        let drain = try await connection.query("""
            SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8 AS seconds,
                   count(*) FILTER (WHERE attempts = 1) AS once
            FROM maintenance_jobs WHERE state = 'succeeded'
            """).first!
        let drainSeconds: Double = try drain.decode("seconds")
        let jobsPerSecond = Double(jobs) / drainSeconds
        print(String(format: "throughput: %d jobs in %.2f s = %.0f jobs/s (each run once: %@)",
                     jobs, drainSeconds, jobsPerSecond, drain["once"] == String(jobs) ? "yes" : "NO"))

        // 2. Latency: jobs enqueued one per INSERT at a steady rate while the workers are idle.
        try await connection.execute("TRUNCATE maintenance_jobs")
        let interval = 1.0 / Double(max(1, rate))
        let start = Date()
        for i in 0..<latencyJobs {
            let due = start.addingTimeInterval(Double(i) * interval)
            let wait = due.timeIntervalSinceNow
            if wait > 0 { try await Task.sleep(nanoseconds: UInt64(wait * 1_000_000_000)) }
            try await connection.execute("INSERT INTO maintenance_jobs (task) VALUES ('noop')")
        }
        try await waitFor(connection, succeeded: latencyJobs, timeout: 120)
        let latency = try await connection.query("""
            SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at) * 1000) AS p
            FROM maintenance_jobs
            """).first!["p"] ?? "{}"
        let percentiles = latency.trimmingCharacters(in: CharacterSet(charactersIn: "{}")).split(separator: ",").compactMap { Double($0) }
        if percentiles.count == 3 {
            print(String(format: "enqueue-to-start latency at %d jobs/s: p50 %.2f ms, p95 %.2f ms, p99 %.2f ms",
                         rate, percentiles[0], percentiles[1], percentiles[2]))
        }
        for child in children { child.signal(SIGTERM) }
        for child in children { child.wait() }

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
                     workers, pgbenchBatch, ceiling, runs.map { String(format: "%.0f", $0) }.joined(separator: ", ")))
        print(String(format: "closebell reaches %.0f%% of the ceiling", 100 * jobsPerSecond / ceiling))
    }

    private func startWorkers(_ url: String) throws -> [ChildProcess] {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return try (0..<workers).map { _ in
            try ChildProcess.spawn(executable, ["worker", "--concurrency", String(concurrency), "--log-level", "warning", "--log-format", "json",
                                   "--claim-batch", String(concurrency)],
                                   environment: ["DATABASE_URL": url])
        }
    }

    private func waitFor(_ connection: PostgresConnection, succeeded count: Int, timeout: Double) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            // Cheap while the queue churns: both conditions use the partial indexes.
            let idle: Bool = try await connection.query("""
                SELECT NOT EXISTS (SELECT 1 FROM maintenance_jobs WHERE state = 'available')
                   AND NOT EXISTS (SELECT 1 FROM maintenance_jobs WHERE state = 'running') AS idle
                """).first!.decode("idle")
            if idle {
                let done: Int = try await connection.query(
                    "SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'succeeded'").first!.decode("n")
                if done >= count { return }
            }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw CommandFailure("benchmark timed out waiting for \(count) jobs")
    }

    /// Runs pgbench with a script that claims `pgbenchBatch` jobs in one transaction and
    /// completes them in a second, like a worker; returns jobs per second.
    private func runPgbench(_ bench: BenchDatabase) throws -> Double {
        let script = """
            WITH picked AS (SELECT id FROM maintenance_jobs WHERE state = 'available' AND queue = 'default' AND run_at <= now() ORDER BY priority DESC, run_at, id LIMIT \(pgbenchBatch) FOR UPDATE SKIP LOCKED), claimed AS (UPDATE maintenance_jobs j SET state = 'running', attempts = j.attempts + 1, locked_by = 'pgbench-' || :client_id, lease_expires_at = now() + interval '60 seconds', heartbeat_at = now(), started_at = now() FROM picked WHERE j.id = picked.id RETURNING j.id, j.attempts) SELECT coalesce(array_agg(id), '{}') AS ids, coalesce(array_agg(attempts), '{}') AS attempts FROM claimed \\gset
            UPDATE maintenance_jobs j SET state = 'succeeded', finished_at = now(), result = c.result, locked_by = NULL, lease_expires_at = NULL FROM unnest(':ids'::bigint[], ':attempts'::int[], array_fill('{}'::jsonb, ARRAY[cardinality(':ids'::bigint[])])) AS c(id, attempt, result) WHERE j.id = c.id AND j.attempts = c.attempt AND j.locked_by = 'pgbench-' || :client_id AND j.state = 'running';

            """
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-pgbench-\(getpid()).sql").path
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let perClient = max(1, jobs / pgbenchBatch / workers)
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
        return tps * Double(pgbenchBatch)
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

    func run() async throws {
        let bench = try await BenchDatabase.prepare(database, name: "closebell_bench")
        defer { bench.finish() }
        let report = try await IngestBenchmark.run(conninfo: bench.url, dailySymbols: dailySymbols, minuteSymbols: minuteSymbols)
        print(report.text)
    }
}
