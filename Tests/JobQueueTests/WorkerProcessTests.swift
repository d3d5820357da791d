import ChildProcess
import Foundation
import JobQueue
import PostgresClient
import TestSupport
import XCTest

/// Guarantees about processes, tested with real `closebell worker` processes.
final class WorkerProcessTests: XCTestCase {
    private let fastFlags = ["--lease", "2", "--poll", "0.5", "--rescue-interval", "0.5", "--grace", "5",
                             "--retry-base", "0.1", "--log-format", "json"]

    private func logFile(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("closebell-\(name)-\(UUID().uuidString.prefix(8)).log").path
    }

    func testFourWorkersDrainTwentyThousandJobsWhileOneIsKilled() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("INSERT INTO maintenance_jobs (task) SELECT 'noop' FROM generate_series(1, 20000)")
        let env = ["DATABASE_URL": db.url]
        var workers = try (0..<4).map { i in
            try ClosebellBinary.start(["worker", "--concurrency", "8"] + fastFlags, environment: env, logFile: logFile("w\(i)"))
        }
        defer { for w in workers { w.signal(SIGKILL); w.wait() } }
        let started = try await eventually(timeout: 60) {
            try await conn.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'succeeded'") >= 3000
        }
        XCTAssertTrue(started)
        let victim = workers[0]
        victim.signal(SIGKILL)
        XCTAssertEqual(victim.wait(), 128 + SIGKILL)
        workers[0] = try ClosebellBinary.start(["worker", "--concurrency", "8"] + fastFlags, environment: env, logFile: logFile("w0b"))
        let drained = try await eventually(timeout: 120) {
            try await conn.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'succeeded'") == 20000
        }
        XCTAssertTrue(drained)
        let summary = try await conn.query("""
            SELECT count(*) AS total,
                   count(*) FILTER (WHERE state <> 'succeeded') AS not_succeeded,
                   count(*) FILTER (WHERE attempts > 1) AS rerun,
                   count(*) FILTER (WHERE attempts > 1 AND errors -> 0 ->> 'type' = 'LeaseExpired'
                                    AND errors -> 0 ->> 'error' LIKE '%:' || $1::text || ':%') AS rerun_after_kill
            FROM maintenance_jobs
            """, [Int(victim.pid)]).first!
        XCTAssertEqual(summary["total"], "20000", "none lost")
        XCTAssertEqual(summary["not_succeeded"], "0")
        // Only the jobs the killed worker held ran again, each because its lease lapsed.
        XCTAssertEqual(summary["rerun"], summary["rerun_after_kill"])
        XCTAssertLessThanOrEqual(Int(summary["rerun"]!)!, 8 + 64)
        for w in workers { w.signal(SIGTERM) }
        for w in workers { XCTAssertEqual(w.wait(seconds: 15), 0, "SIGTERM drains and exits 0") }
    }

    func testSigtermDrainsARunningJobAndExitsZero() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute(#"INSERT INTO maintenance_jobs (task, args) VALUES ('noop', '{"sleep_ms": 1500}')"#)
        let log = logFile("term")
        let worker = try ClosebellBinary.start(["worker"] + fastFlags, environment: ["DATABASE_URL": db.url], logFile: log)
        let running = try await eventually { try await conn.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'running'") == 1 }
        XCTAssertTrue(running)
        worker.signal(SIGTERM)
        XCTAssertEqual(worker.wait(seconds: 20), 0)
        let state = try await conn.query("SELECT state FROM maintenance_jobs").first?["state"]
        XCTAssertEqual(state, "succeeded", "the running job finished within the grace period")
        let output = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertTrue(output.contains(#""event":"worker_stopping""#), output)
        XCTAssertTrue(output.contains(#""event":"task_completed""#))
        // Every line is a JSON object starting with ts, level and msg; numbers are numbers.
        for line in output.split(separator: "\n") {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
            XCTAssertTrue(line.hasPrefix(#"{"ts":""#) && line.contains(#"","level":""#), String(line))
            XCTAssertNotNil(object["msg"] as? String, String(line))
        }
        // Structured lines carry the job's identity.
        let line = try XCTUnwrap(output.split(separator: "\n").first { $0.contains("task_completed") })
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(object["task"] as? String, "noop")
        XCTAssertEqual((object["attempt"] as? NSNumber)?.intValue, 1)
        XCTAssertNotNil(object["job_id"] as? NSNumber)
        let duration = try XCTUnwrap(object["duration_s"] as? NSNumber, "duration_s is a number: \(line)")
        XCTAssertGreaterThan(duration.doubleValue, 1.0, "the job slept 1.5 s")
    }

    func testPsqlInsertOfAMisspelledTaskIsRefused() throws {
        let db = try TestCluster.migratedDatabase()
        let cluster = try TestCluster.shared()
        let log = logFile("psql")
        let psql = try ChildProcess.spawn(cluster.programPath("psql"), ["-X", "-v", "ON_ERROR_STOP=1", "-d", db.url, "-c",
                                                                        "INSERT INTO maintenance_jobs (task) VALUES ('ohlc_dialy')"], outputPath: log)
        XCTAssertNotEqual(psql.wait(), 0)
        let output = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertTrue(output.contains(#"ERROR:  unknown task "ohlc_dialy""#), output)
        XCTAssertTrue(output.contains("HINT:  known tasks: backfill, backup, completeness, compress, earnings, metadata_enrich, noop, ohlc_daily"), output)
    }

    func testEnqueueCommandAndJobsCommands() async throws {
        let db = try TestCluster.migratedDatabase()
        let env = ["DATABASE_URL": db.url]
        let ok = try ClosebellBinary.run(["enqueue", "noop", "--args", #"{"sleep_ms": 1}"#, "--json"], environment: env)
        XCTAssertEqual(ok.status, 0, ok.output)
        let object = try JSONSerialization.jsonObject(with: Data(ok.output.utf8)) as? [String: Any]
        XCTAssertEqual(object?["enqueued"] as? Bool, true)
        let id = try XCTUnwrap(object?["id"] as? Int)

        let refused = try ClosebellBinary.run(["enqueue", "vacum"], environment: env)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.output.contains("unknown task \"vacum\""), refused.output)
        XCTAssertTrue(refused.output.contains("known tasks:"), refused.output)

        let badJSON = try ClosebellBinary.run(["enqueue", "noop", "--args", "{days: 3}"], environment: env)
        XCTAssertEqual(badJSON.status, 64, badJSON.output)

        let cancel = try ClosebellBinary.run(["jobs", "cancel", String(id)], environment: env)
        XCTAssertEqual(cancel.status, 0, cancel.output)
        let again = try ClosebellBinary.run(["jobs", "cancel", String(id)], environment: env)
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.output.contains("is cancelled"), again.output)
        let retry = try ClosebellBinary.run(["jobs", "retry", String(id)], environment: env)
        XCTAssertEqual(retry.status, 0, retry.output)
        let show = try ClosebellBinary.run(["jobs", "show", String(id), "--json"], environment: env)
        let job = try JSONSerialization.jsonObject(with: Data(show.output.utf8)) as? [String: Any]
        XCTAssertEqual(job?["state"] as? String, "available")
        let status = try ClosebellBinary.run(["status", "--json"], environment: env)
        XCTAssertEqual(status.status, 0, status.output)
        let report = try JSONSerialization.jsonObject(with: Data(status.output.utf8)) as? [String: Any]
        let depth = report?["depth"] as? [[String: Any]]
        XCTAssertEqual(depth?.first?["state"] as? String, "available")
        XCTAssertEqual(depth?.first?["count"] as? Int, 1)
    }

    func testBadConfigValueIsRefusedAtStartWithItsKey() throws {
        let db = try TestCluster.migratedDatabase()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).yaml").path
        try "worker:\n  lease_seconds: ten\n".write(toFile: path, atomically: true, encoding: .utf8)
        let result = try ClosebellBinary.run(["worker", "--config", path], environment: ["DATABASE_URL": db.url])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.output.contains("worker.lease_seconds: expected a number, got ten"), result.output)
        try "worker:\n  leese_seconds: 10\n".write(toFile: path, atomically: true, encoding: .utf8)
        let typo = try ClosebellBinary.run(["worker", "--config", path], environment: ["DATABASE_URL": db.url])
        XCTAssertTrue(typo.output.contains("worker.leese_seconds: unknown key"), typo.output)
        try "worker:\n  time_limits:\n    backup: soon\n".write(toFile: path, atomically: true, encoding: .utf8)
        let limit = try ClosebellBinary.run(["worker", "--config", path], environment: ["DATABASE_URL": db.url])
        XCTAssertTrue(limit.output.contains("worker.time_limits.backup: expected a number, got soon"), limit.output)
        try "worker:\n  time_limits:\n    vacum: 60\n".write(toFile: path, atomically: true, encoding: .utf8)
        let misspelt = try ClosebellBinary.run(["worker", "--config", path], environment: ["DATABASE_URL": db.url])
        XCTAssertNotEqual(misspelt.status, 0)
        XCTAssertTrue(misspelt.output.contains("time_limits.vacum: no such task"), misspelt.output)
        let flag = try ClosebellBinary.run(["worker", "--time-limit", "backup=never"], environment: ["DATABASE_URL": db.url])
        XCTAssertEqual(flag.status, 64, flag.output)
        XCTAssertTrue(flag.output.contains("--time-limit must be TASK=SECONDS or SECONDS"), flag.output)
        try "backup:\n  pg_dump: /nonexistent/pg_dump\n".write(toFile: path, atomically: true, encoding: .utf8)
        let program = try ClosebellBinary.run(["worker", "--config", path], environment: ["DATABASE_URL": db.url])
        XCTAssertTrue(program.output.contains("backup.pg_dump: no executable program /nonexistent/pg_dump"), program.output)
        try "backup:\n  compressor: xz\n".write(toFile: path, atomically: true, encoding: .utf8)
        let xz = try ClosebellBinary.run(["backup", "list", "--config", path], environment: ["DATABASE_URL": db.url])
        XCTAssertNotEqual(xz.status, 0)
        XCTAssertTrue(xz.output.contains("backup.compressor:"), xz.output)
        // A bare `off` is YAML false: accepted as "no deadline".
        try "alerts:\n  daily_deadline: off\nworker:\n  lease_seconds: 1\n".write(toFile: path, atomically: true, encoding: .utf8)
        let off = try ClosebellBinary.run(["worker", "--config", path, "--exit-when-idle", "0.5"], environment: ["DATABASE_URL": db.url])
        XCTAssertEqual(off.status, 0, off.output)
        let usage = try ClosebellBinary.run(["worker", "--log-format", "xml"], environment: ["DATABASE_URL": db.url])
        XCTAssertEqual(usage.status, 64, usage.output)
    }

    /// Acceptance: a retention job blocked on rows an idle transaction holds. After the cancel
    /// UPDATE no closebell statement waits any more, the job stays cancelled, and SIGTERM ends
    /// the worker with 0 within 15 s. Its DELETE used to keep waiting on the server, and the
    /// worker used to wait for it past SIGTERM.
    func testCancellingABlockedRetentionJobStopsItsStatement() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("""
            INSERT INTO market_data_daily (symbol, date, open, high, low, close, volume)
            SELECT 'OLD', current_date - 400 - g, 1, 1, 1, 1, 1 FROM generate_series(1, 10) AS g
            """)
        let holder = try await PostgresConnection.connect(db.url)
        try await holder.execute("BEGIN; SELECT * FROM market_data_daily WHERE symbol = 'OLD' FOR UPDATE")
        let id = try await conn.withSession {
            try QueueStore.enqueue($0, task: "retention", args: PostgresJSON(text: #"{"tables": ["market_data_daily"]}"#))!
        }
        try await assertCancelReachesBlockedJob(id, db: db, conn: conn, name: "retention") {
            try await conn.query("UPDATE maintenance_jobs SET state = 'cancelled' WHERE id = $1", [id])
        }
        let rows = try await conn.count("SELECT count(*) AS n FROM market_data_daily WHERE symbol = 'OLD'")
        XCTAssertEqual(rows, 10, "the cancelled DELETE removed nothing")
        try await holder.execute("ROLLBACK")
    }

    /// A cancelled backup job stops pg_dump: it is gone from the server and the process table.
    func testCancellingABackupJobStopsPgDump() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        // pg_dump waits for this lock (it takes ACCESS SHARE on every table it dumps).
        let holder = try await Self.idleTransactionLocking("ticker_universe", url: db.url)
        let id = try await conn.withSession { try QueueStore.enqueue($0, task: "backup")! }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-cancel-\(UUID().uuidString.prefix(8))").path
        let worker = try ClosebellBinary.start(
            ["worker"] + fastFlags, environment: ["DATABASE_URL": db.url, "CLOSEBELL_BACKUP_DIR": directory], logFile: logFile("backup"))
        defer { worker.signal(SIGKILL); _ = worker.wait() }
        let dumping = try await eventually(timeout: 30) {
            try await conn.count("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'closebell backup' AND wait_event_type = 'Lock'") == 1
        }
        XCTAssertTrue(dumping, "pg_dump waits for the lock")
        XCTAssertTrue(Self.children(of: worker.pid).contains("pg_dump"))
        let cancel = try ClosebellBinary.run(["jobs", "cancel", String(id)], environment: ["DATABASE_URL": db.url])
        XCTAssertEqual(cancel.status, 0, cancel.output)
        let gone = try await eventually(timeout: 30) {
            try await conn.count("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'closebell backup'") == 0
                && !Self.children(of: worker.pid).contains { ["pg_dump", "pigz", "gzip"].contains($0) }
        }
        XCTAssertTrue(gone, "pg_dump and the compressor are gone from the server and the process table")
        worker.signal(SIGTERM)
        XCTAssertEqual(worker.wait(seconds: 15), 0)
        let state = try await conn.query("SELECT state FROM maintenance_jobs WHERE id = $1", [id]).first?["state"]
        XCTAssertEqual(state, "cancelled")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        XCTAssertFalse(left.contains { $0.hasSuffix(".sql.gz") && !$0.hasPrefix(".") }, "\(left)")
        try await holder.execute("ROLLBACK")
    }

    /// The same for vacuum: held behind an idle transaction's exclusive lock, cancelled, gone.
    func testCancellingABlockedVacuumJobStopsItsStatement() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let holder = try await Self.idleTransactionLocking("ticker_universe", url: db.url)
        let id = try await conn.withSession {
            try QueueStore.enqueue($0, task: "vacuum", args: PostgresJSON(text: #"{"tables": ["ticker_universe"]}"#))!
        }
        try await assertCancelReachesBlockedJob(id, db: db, conn: conn, name: "vacuum") {
            let cancel = try ClosebellBinary.run(["jobs", "cancel", String(id)], environment: ["DATABASE_URL": db.url])
            XCTAssertEqual(cancel.status, 0, cancel.output)
        }
        try await holder.execute("ROLLBACK")
    }

    /// A backup past its time limit fails with TimeLimitExceeded, and pg_dump is gone.
    func testABackupPastItsTimeLimitFailsAndPgDumpIsGone() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let holder = try await Self.idleTransactionLocking("ticker_universe", url: db.url)
        let id = try await conn.withSession { try QueueStore.enqueue($0, task: "backup", maxAttempts: 1)! }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-limit-\(UUID().uuidString.prefix(8))").path
        let worker = try ClosebellBinary.start(
            ["worker", "--time-limit", "backup=2"] + fastFlags,
            environment: ["DATABASE_URL": db.url, "CLOSEBELL_BACKUP_DIR": directory], logFile: logFile("limit"))
        defer { worker.signal(SIGKILL); _ = worker.wait() }
        let failed = try await eventually(timeout: 30) {
            try await conn.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'failed'") == 1
        }
        XCTAssertTrue(failed)
        let type = try await conn.query("SELECT errors -> 0 ->> 'type' AS type FROM maintenance_jobs WHERE id = $1", [id]).first?["type"]
        XCTAssertEqual(type, "TimeLimitExceeded")
        let dumps = try await conn.count("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'closebell backup'")
        XCTAssertEqual(dumps, 0)
        XCTAssertFalse(Self.children(of: worker.pid).contains { ["pg_dump", "pigz", "gzip"].contains($0) })
        worker.signal(SIGTERM)
        XCTAssertEqual(worker.wait(seconds: 15), 0)
        try await holder.execute("ROLLBACK")
    }

    /// A second SIGTERM cuts the grace period short: the running job is cancelled and released
    /// at once.
    func testASecondSigtermCancelsAndReleasesAtOnce() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute(#"INSERT INTO maintenance_jobs (task, args) VALUES ('noop', '{"sleep_ms": 3600000}')"#)
        let log = logFile("second")
        let worker = try ClosebellBinary.start(["worker", "--lease", "2", "--grace", "3600", "--log-format", "json"],
                                               environment: ["DATABASE_URL": db.url], logFile: log)
        defer { worker.signal(SIGKILL); _ = worker.wait() }
        let running = try await eventually { try await conn.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'running'") == 1 }
        XCTAssertTrue(running)
        worker.signal(SIGTERM)
        let stopping = try await eventually { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("worker_stopping") }
        XCTAssertTrue(stopping)
        worker.signal(SIGTERM)
        XCTAssertEqual(worker.wait(seconds: 15), 0)
        let row = try await conn.query("SELECT state, attempts FROM maintenance_jobs").first!
        XCTAssertEqual("\(row["state"]!)/\(row["attempts"]!)", "available/0")
    }

    /// Starts a worker, waits until its job `id` (task `name`) waits on a lock, cancels the job
    /// with `cancel`, and checks that within 30 s no closebell statement waits any more, that the
    /// job stays cancelled with no holder, and that SIGTERM then ends the worker with 0 within 15 s.
    private func assertCancelReachesBlockedJob(
        _ id: Int64, db: (url: String, name: String), conn: PostgresConnection, name: String,
        cancel: () async throws -> Void
    ) async throws {
        let worker = try ClosebellBinary.start(["worker"] + fastFlags, environment: ["DATABASE_URL": db.url], logFile: logFile(name))
        defer { worker.signal(SIGKILL); _ = worker.wait() }
        let waitingSQL = """
            SELECT count(*) AS n FROM pg_stat_activity
             WHERE datname = current_database() AND application_name LIKE 'closebell%' AND wait_event_type = 'Lock'
            """
        let blocked = try await eventually { try await conn.count(waitingSQL) == 1 }
        XCTAssertTrue(blocked, "the \(name) job waits for the idle transaction's locks")
        try await cancel()
        let released = try await eventually(timeout: 30) { try await conn.count(waitingSQL) == 0 }
        XCTAssertTrue(released, "no closebell statement still waits after the cancel")
        worker.signal(SIGTERM)
        XCTAssertEqual(worker.wait(seconds: 15), 0)
        let state = try await conn.query("SELECT state, locked_by FROM maintenance_jobs WHERE id = $1", [id]).first!
        XCTAssertEqual(state["state"], "cancelled", "the job stays cancelled")
        XCTAssertNil(state["locked_by"])
    }

    /// A session left idle in a transaction that holds an ACCESS EXCLUSIVE lock on `table`.
    static func idleTransactionLocking(_ table: String, url: String) async throws -> PostgresConnection {
        let holder = try await PostgresConnection.connect(url)
        try await holder.execute("BEGIN; LOCK TABLE \(table) IN ACCESS EXCLUSIVE MODE")
        return holder
    }

    /// The names of the processes whose parent is `pid` (from /proc).
    static func children(of pid: pid_t) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> String? in
            guard Int32(entry) != nil, let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, Int32(fields[1]) == pid else { return nil }
            return String(stat[stat.index(after: open)..<close])
        }
    }
}
