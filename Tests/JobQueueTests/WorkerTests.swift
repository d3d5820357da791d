import Foundation
@testable import JobQueue
import Logging
import PostgresClient
import TestSupport
import XCTest

/// The worker in this process against the real cluster.
final class WorkerTests: XCTestCase {
    private func worker(_ url: String, _ configure: (inout WorkerConfiguration) -> Void = { _ in }, tasks: [any JobTask] = [NoopTask()]) -> Worker {
        var config = testConfiguration()
        configure(&config)
        return Worker(conninfo: url, registry: TaskRegistry(tasks), configuration: config, logger: quietLogger)
    }

    func testDrainsJobsEachExactlyOnce() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("INSERT INTO maintenance_jobs (task) SELECT 'noop' FROM generate_series(1, 500)")
        try await runUntilIdle(worker(db.url))
        let row = try await conn.query("""
            SELECT count(*) FILTER (WHERE state = 'succeeded') AS ok, max(attempts) AS max_attempts,
                   count(*) FILTER (WHERE started_at IS NULL OR finished_at IS NULL) AS incomplete
            FROM maintenance_jobs
            """).first!
        XCTAssertEqual(row["ok"], "500")
        XCTAssertEqual(row["max_attempts"], "1")
        XCTAssertEqual(row["incomplete"], "0")
    }

    func testRetriesWithBackoffKeepEveryError() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("""
            INSERT INTO maintenance_jobs (task, args, max_attempts) VALUES
              ('noop', '{"fail_times": 2}', 5),
              ('noop', '{"fail_times": 9}', 3)
            """)
        try await runUntilIdle(worker(db.url))
        let rows = try await conn.query("""
            SELECT state, attempts, jsonb_array_length(errors) AS errors, errors -> -1 ->> 'error' AS last,
                   errors -> 0 ->> 'type' AS type
            FROM maintenance_jobs ORDER BY id
            """).map { $0 }
        XCTAssertEqual(rows[0]["state"], "succeeded")
        XCTAssertEqual(rows[0]["attempts"], "3")
        XCTAssertEqual(rows[0]["errors"], "2")
        XCTAssertEqual(rows[0]["type"], "DeliberateFailure")
        XCTAssertEqual(rows[1]["state"], "failed")
        XCTAssertEqual(rows[1]["attempts"], "3")
        XCTAssertEqual(rows[1]["errors"], "3")
        XCTAssertEqual(rows[1]["last"], "noop: deliberate failure of attempt 3 of 9")
    }

    func testTaskUnknownToThisWorkerFailsAtOnce() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("INSERT INTO maintenance_jobs (task) VALUES ('compress')")
        try await runUntilIdle(worker(db.url))
        let row = try await conn.query("SELECT state, attempts, errors -> 0 ->> 'error' AS error FROM maintenance_jobs").first!
        XCTAssertEqual(row["state"], "failed")
        XCTAssertEqual(row["attempts"], "1")
        XCTAssertTrue(row["error"]?.contains("unknown task \"compress\"") ?? false)
    }

    /// The error decides: a serialization failure is retried, an undefined table fails at once.
    func testRetryableErrorsRetryAndPermanentOnesFailAtOnce() async throws {
        struct Statement: JobTask {
            static let declaration = NoopTask.declaration
            func run(_ context: JobContext) async throws -> TestResult {
                let connection = try await context.connect()
                do {
                    if !context.args.text.contains("fail_times") {
                        try await connection.execute("SELECT * FROM no_such_table")
                    } else if context.attempt == 1 {
                        try await connection.execute(
                            "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$")
                    }
                    await connection.close()
                    return TestResult()
                } catch {
                    await connection.close()
                    throw error
                }
            }
        }
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute(#"""
            INSERT INTO maintenance_jobs (task, args, max_attempts) VALUES
              ('noop', '{"fail_times": 1}', 5),
              ('noop', '{}', 5)
            """#)
        try await runUntilIdle(worker(db.url, tasks: [Statement()]))
        let rows = try await conn.query("""
            SELECT state, attempts, errors -> -1 ->> 'sqlstate' AS sqlstate FROM maintenance_jobs ORDER BY id
            """).map { "\($0["state"]!)/\($0["attempts"]!)/\($0["sqlstate"] ?? "-")" }
        XCTAssertEqual(rows, ["succeeded/2/40001", "failed/1/42P01"])
    }

    func testHigherPriorityRunsFirst() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("""
            INSERT INTO maintenance_jobs (task, priority) SELECT 'noop', 0 FROM generate_series(1, 20);
            INSERT INTO maintenance_jobs (task, priority) VALUES ('noop', 10);
            """)
        try await runUntilIdle(worker(db.url) { $0.concurrency = 1; $0.claimBatchSize = 1 })
        let first = try await conn.query("SELECT priority FROM maintenance_jobs ORDER BY started_at LIMIT 1").first?["priority"]
        XCTAssertEqual(first, "10")
    }

    func testCancellingARunningJobStopsIt() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let id = try await conn.withSession { try QueueStore.enqueue($0, task: "noop", args: PostgresJSON(text: #"{"sleep_ms": 60000}"#))! }
        let w = worker(db.url) { $0.exitWhenIdleSeconds = nil }
        let run = Task { try await w.run() }
        let started = try await eventually { try await conn.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'running'") == 1 }
        XCTAssertTrue(started)
        try await conn.query("UPDATE maintenance_jobs SET state = 'cancelled' WHERE id = $1", [id])
        // The heartbeat (every 0.5 s with a 2 s lease) notices, and the slot frees up.
        let stopped = try await eventually(timeout: 10) { w.stats.snapshot().finished["noop"]?["cancelled"] == 1 }
        XCTAssertTrue(stopped)
        w.requestStop()
        try await run.value
        let row = try await conn.query("SELECT state, finished_at IS NOT NULL AS done FROM maintenance_jobs WHERE id = $1", [id]).first!
        XCTAssertEqual(row["state"], "cancelled")
        XCTAssertEqual(row["done"], "t")
    }

    /// Used to depend on a 300 ms job finishing within a 1 s grace, and on the drain's race
    /// (a job ending between its cancel flag and the release was neither written nor released).
    /// Now the test decides when the short job ends, and a second stop request ends the grace.
    func testStopLetsShortJobsFinishAndReleasesLongOnes() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let gate = Gate()
        let short = try await conn.withSession { try QueueStore.enqueue($0, task: "noop", args: Steered.args(.untilGateOpens))! }
        let long = try await conn.withSession { try QueueStore.enqueue($0, task: "noop", args: Steered.args(.untilCancelled))! }
        let w = worker(db.url, { $0.exitWhenIdleSeconds = nil; $0.graceSeconds = 3600 }, tasks: [Steered(gate: gate)])
        let run = Task { try await w.run() }
        let started = try await eventually { try await conn.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'running'") == 2 }
        XCTAssertTrue(started)
        w.requestStop()
        gate.open()
        let shortDone = try await eventually { try await conn.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'succeeded'") == 1 }
        XCTAssertTrue(shortDone, "the short job finished and was written during the grace period")
        w.requestStop()
        try await run.value
        let states = try await jobStates(conn)
        XCTAssertEqual(states[short], "succeeded/1")
        XCTAssertEqual(states[long], "available/0", "released without counting the attempt")
    }

    func testDeadWorkersJobIsRescuedAndRunAgain() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let id = try await conn.withSession { try QueueStore.enqueue($0, task: "noop")! }
        // A worker claims it and dies without a heartbeat.
        _ = try await conn.withSession { try QueueStore.claim($0, worker: "ghost", queue: "default", limit: 1, leaseSeconds: 0.3) }
        try await runUntilIdle(worker(db.url) { $0.exitWhenIdleSeconds = 1.5 })
        let row = try await conn.query("SELECT state, attempts, errors -> 0 ->> 'type' AS type FROM maintenance_jobs WHERE id = $1", [id]).first!
        XCTAssertEqual(row["state"], "succeeded")
        XCTAssertEqual(row["attempts"], "2")
        XCTAssertEqual(row["type"], "LeaseExpired")
    }

    func testLiveLongJobIsNeverRescued() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        // Runs for three leases; heartbeats must keep it.
        try await conn.execute(#"INSERT INTO maintenance_jobs (task, args) VALUES ('noop', '{"sleep_ms": 6000}')"#)
        try await runUntilIdle(worker(db.url))
        let row = try await conn.query("SELECT state, attempts, errors::text AS errors FROM maintenance_jobs").first!
        XCTAssertEqual(row["state"], "succeeded")
        XCTAssertEqual(row["attempts"], "1")
        XCTAssertEqual(row["errors"], "[]")
    }

    func testNotifyWakesAnIdleWorkerBeforeThePollInterval() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let w = worker(db.url) { $0.exitWhenIdleSeconds = nil; $0.pollSeconds = 30 }
        let run = Task { try await w.run() }
        try await Task.sleep(nanoseconds: 500_000_000)
        try await conn.execute("INSERT INTO maintenance_jobs (task) VALUES ('noop')")
        // With a 30 s poll, only the notification can get it done within 10 s.
        let done = try await eventually(timeout: 10) { try await conn.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'succeeded'") == 1 }
        XCTAssertTrue(done)
        w.requestStop()
        try await run.value
    }

    func testProgressCheckpointSurvivesARetry() async throws {
        struct Resumable: JobTask {
            static let declaration = NoopTask.declaration
            struct Progress: Codable { var done: [Int] }
            func run(_ context: JobContext) async throws -> TestResult {
                var progress = try context.previousProgress?.decode(Progress.self) ?? Progress(done: [])
                let skipped = progress.done.count
                for unit in 1...4 where !progress.done.contains(unit) {
                    progress.done.append(unit)
                    try await context.checkpoint(progress)
                    if unit == 2 && context.attempt == 1 { throw NoopTask.DeliberateFailure(attempt: 1, failTimes: 1) }
                }
                return TestResult(skipped: skipped)
            }
        }
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("INSERT INTO maintenance_jobs (task) VALUES ('noop')")
        try await runUntilIdle(worker(db.url, tasks: [Resumable()]))
        let row = try await conn.query("SELECT state, attempts, result ->> 'skipped' AS skipped, progress::text AS progress FROM maintenance_jobs").first!
        XCTAssertEqual(row["state"], "succeeded")
        XCTAssertEqual(row["attempts"], "2")
        XCTAssertEqual(row["skipped"], "2", "the second attempt skipped the units checkpointed by the first")
        XCTAssertEqual(row["progress"], #"{"done": [1, 2, 3, 4]}"#)
    }

    func testWorkerSurvivesADatabaseRestart() async throws {
        let cluster = try TestCluster.shared()
        let db = try TestCluster.migratedDatabase()
        let w = worker(db.url) { $0.exitWhenIdleSeconds = nil }
        let run = Task { try await w.run() }
        var conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("INSERT INTO maintenance_jobs (task) SELECT 'noop' FROM generate_series(1, 50)")
        let firstBatch = try await eventually { try await conn.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'succeeded'") == 50 }
        XCTAssertTrue(firstBatch)
        try cluster.restart()
        conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("INSERT INTO maintenance_jobs (task) SELECT 'noop' FROM generate_series(1, 50)")
        let secondBatch = try await eventually(timeout: 30) { try await conn.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'succeeded'") == 100 }
        XCTAssertTrue(secondBatch, "the worker reconnected and drained the jobs enqueued after the restart")
        XCTAssertTrue(w.stats.loopsAlive)
        w.requestStop()
        try await run.value
    }

    /// A result the database cannot store (jsonb refuses `\u0000`) used to fail its whole batch
    /// on every retry, forever: no later outcome was written and the worker never went idle.
    func testAnOutcomeTheDatabaseRefusesDoesNotBlockTheOthers() async throws {
        struct Poison: JobTask {
            static let declaration = NoopTask.declaration
            func run(_ context: JobContext) async throws -> TestResult {
                try await Task.sleep(nanoseconds: 100_000_000)
                guard context.args.text.contains("fail_times") else { return TestResult() }
                return TestResult(text: "nul\u{0}byte")
            }
        }
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute(#"""
            INSERT INTO maintenance_jobs (task, args, max_attempts) VALUES ('noop', '{"fail_times": 0}', 1);
            INSERT INTO maintenance_jobs (task) SELECT 'noop' FROM generate_series(1, 20);
            """#)
        // Every job sleeps as long, so the poison one shares batches with the others.
        try await runUntilIdle(worker(db.url, { $0.exitWhenIdleSeconds = 1 }, tasks: [Poison()]), timeout: 30)
        let rows = try await conn.query("""
            SELECT state, count(*) AS n, max(errors -> -1 ->> 'type') AS type, max(errors -> -1 ->> 'sqlstate') AS sqlstate
            FROM maintenance_jobs GROUP BY state ORDER BY state
            """).map { "\($0["state"]!)=\($0["n"]!)/\($0["type"] ?? "-")/\($0["sqlstate"] ?? "-")" }
        XCTAssertEqual(rows, ["failed=1/OutcomeNotStored/22P05", "succeeded=20/-/-"])
    }

    /// A claim the server refuses (here: migrations not applied) used to be retried at once, in
    /// a loop that spun a core and flooded the log; it now waits for the poll interval.
    func testAFailingClaimIsRetriedAtThePollIntervalNotInATightLoop() async throws {
        final class Counter: @unchecked Sendable {
            let lock = NSLock()
            var claimFailures = 0
        }
        struct Counting: LogHandler {
            let counter: Counter
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .trace
            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }
            func log(event: LogEvent) {
                if event.message.description == "claim_failed" { counter.lock.withLock { counter.claimFailures += 1 } }
            }
        }
        let counter = Counter()
        let db = try TestCluster.freshDatabase()
        var config = testConfiguration()
        config.exitWhenIdleSeconds = nil
        config.pollSeconds = 0.5
        let w = Worker(conninfo: db.url, registry: TaskRegistry([NoopTask()]), configuration: config,
                       logger: Logger(label: "test") { _ in Counting(counter: counter) })
        let run = Task { try await w.run() }
        let failing = try await eventually { counter.lock.withLock { counter.claimFailures } >= 1 }
        XCTAssertTrue(failing)
        try await Task.sleep(nanoseconds: 1_000_000_000)
        w.requestStop()
        try await run.value
        // About 3 in this second at a 0.5 s poll; a tight loop makes thousands.
        let failures = counter.lock.withLock { counter.claimFailures }
        XCTAssertLessThan(failures, 50)
    }

    /// A wait woken by a signal used to leave a phantom signal behind (its cancelled timer
    /// signalled too), so the next wait returned at once: every wake-up cost an extra claim.
    func testASignalWakesOneWaitOnly() async throws {
        final class Flag: @unchecked Sendable {
            let lock = NSLock()
            var value = false
        }
        let signal = WakeSignal()
        let first = Task { await signal.wait(timeout: 30) }
        try await Task.sleep(nanoseconds: 100_000_000)
        signal.signal()
        await first.value
        let returned = Flag()
        let second = Task {
            await signal.wait(timeout: 30)
            returned.lock.withLock { returned.value = true }
        }
        try await Task.sleep(nanoseconds: 300_000_000)
        XCTAssertFalse(returned.lock.withLock { returned.value }, "the second wait returned without a signal")
        signal.signal()
        await second.value
        // Cancelling the waiting task still ends its wait.
        let cancelled = Task { await signal.wait(timeout: 30) }
        cancelled.cancel()
        await cancelled.value
    }
}
