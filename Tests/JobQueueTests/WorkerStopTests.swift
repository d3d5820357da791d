import Foundation
@testable import JobQueue
import PostgresClient
import TestSupport
import XCTest

/// A `noop` stand-in whose end the test decides; the mode travels in `sleep_ms` (the only
/// numeric argument the database accepts for `noop`).
struct Steered: JobTask {
    enum Mode: Int {
        /// Ends (succeeds) when the test opens the gate, whatever happens meanwhile.
        case untilGateOpens = 1
        /// Runs until it is cancelled, then throws.
        case untilCancelled = 2
        /// Runs until it is cancelled, then returns a result anyway (a task that completed
        /// just as it was stopped).
        case completesWhenCancelled = 3
        /// Runs `SELECT pg_sleep(3600)` on its own connection.
        case sleepsInTheServer = 4
        /// Ends (succeeds) when the test opens the second gate.
        case untilLaterGateOpens = 5
    }

    static func args(_ mode: Mode) -> PostgresJSON { PostgresJSON(text: #"{"sleep_ms": \#(mode.rawValue)}"#) }

    let gate: Gate
    var later = Gate()
    static let declaration = NoopTask.declaration

    func run(_ context: JobContext) async throws -> TestResult {
        struct Args: Decodable { var sleep_ms: Int }
        let mode = Mode(rawValue: try context.decodeArgs(Args.self, allowedKeys: ["sleep_ms"]).sleep_ms)!
        switch mode {
        case .untilGateOpens, .untilLaterGateOpens:
            let awaited = mode == .untilGateOpens ? gate : later
            while !awaited.isOpen { try? await Task.sleep(nanoseconds: 10_000_000) }
            return TestResult()
        case .untilCancelled:
            while !context.isCancelled { try? await Task.sleep(nanoseconds: 10_000_000) }
            throw JobCancelled()
        case .completesWhenCancelled:
            while !context.isCancelled { try? await Task.sleep(nanoseconds: 10_000_000) }
            return TestResult(completed: true)
        case .sleepsInTheServer:
            let connection = try await context.connect()
            do {
                try await connection.query("SELECT pg_sleep(3600)")
            } catch {
                await connection.close()
                throw error
            }
            await connection.close()
            return TestResult()
        }
    }
}

/// A flag the test raises.
final class Gate: @unchecked Sendable {
    private let lock = NSLock()
    private var opened = false
    func open() { lock.withLock { opened = true } }
    var isOpen: Bool { lock.withLock { opened } }
}

/// `id → state/attempts` of every job.
func jobStates(_ conn: PostgresConnection) async throws -> [Int64: String] {
    Dictionary(uniqueKeysWithValues: try await conn.query("SELECT id, state, attempts FROM maintenance_jobs").map {
        (Int64($0["id"]!)!, "\($0["state"]!)/\($0["attempts"]!)")
    })
}

/// Shutdown, time limits and outages, with the worker in this process against the real cluster.
final class WorkerStopTests: XCTestCase {
    private func worker(_ url: String, _ configure: (inout WorkerConfiguration) -> Void = { _ in }, tasks: [any JobTask]) -> Worker {
        var config = testConfiguration()
        config.exitWhenIdleSeconds = nil
        configure(&config)
        return Worker(conninfo: url, registry: TaskRegistry(tasks), configuration: config, logger: quietLogger)
    }

    /// The drain race, both ways: when the grace period ends, a task that completes as it is
    /// stopped is written as succeeded, and one that stops is released, never left running.
    func testAtTheEndOfTheGraceEveryJobIsWrittenOrReleased() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("""
            INSERT INTO maintenance_jobs (task, args) SELECT 'noop', '{"sleep_ms": 3}' FROM generate_series(1, 4);
            INSERT INTO maintenance_jobs (task, args) SELECT 'noop', '{"sleep_ms": 2}' FROM generate_series(1, 4);
            """)
        let w = worker(db.url, { $0.graceSeconds = 0 }, tasks: [Steered(gate: Gate())])
        let run = Task { try await w.run() }
        let started = try await eventually { try await conn.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'running'") == 8 }
        XCTAssertTrue(started)
        w.requestStop()
        try await run.value
        let rows = try await conn.query("""
            SELECT args ->> 'sleep_ms' AS mode, state, attempts, count(*) AS n FROM maintenance_jobs GROUP BY 1, 2, 3 ORDER BY 1
            """).map { "\($0["mode"]!): \($0["n"]!) \($0["state"]!)/\($0["attempts"]!)" }
        XCTAssertEqual(rows, ["2: 4 available/0", "3: 4 succeeded/1"])
    }

    /// A job past its time limit is stopped: its statement is cancelled on the server and the
    /// attempt fails with TimeLimitExceeded.
    func testAJobPastItsTimeLimitFailsWithTimeLimitExceededAndItsStatementIsGone() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let id = try await conn.withSession { try QueueStore.enqueue($0, task: "noop", args: Steered.args(.sleepsInTheServer), maxAttempts: 1)! }
        let w = worker(db.url, { $0.timeLimits["noop"] = 1 }, tasks: [Steered(gate: Gate())])
        let run = Task { try await w.run() }
        let sleeping = try await eventually {
            try await conn.count("SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3600)' AND state = 'active'") == 1
        }
        XCTAssertTrue(sleeping)
        let failed = try await eventually { try await conn.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'failed'") == 1 }
        XCTAssertTrue(failed)
        let row = try await conn.query("SELECT errors -> 0 ->> 'type' AS type, errors -> 0 ->> 'error' AS error FROM maintenance_jobs WHERE id = $1", [id]).first!
        XCTAssertEqual(row["type"], "TimeLimitExceeded")
        XCTAssertEqual(row["error"], "task noop ran past its time limit of 1 s and was stopped (worker.time_limits)")
        // The attempt is recorded only after the task ended, and it ends only once its statement did.
        let active = try await conn.count("SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3600)' AND state = 'active'")
        XCTAssertEqual(active, 0)
        w.requestStop()
        try await run.value
    }

    /// A cancel UPDATE reaches the statement the task is running.
    func testCancellingAJobCancelsItsStatementOnTheServer() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let id = try await conn.withSession { try QueueStore.enqueue($0, task: "noop", args: Steered.args(.sleepsInTheServer))! }
        let w = worker(db.url, tasks: [Steered(gate: Gate())])
        let run = Task { try await w.run() }
        let sleeping = try await eventually {
            try await conn.count("SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3600)' AND state = 'active'") == 1
        }
        XCTAssertTrue(sleeping)
        try await conn.query("UPDATE maintenance_jobs SET state = 'cancelled' WHERE id = $1", [id])
        let gone = try await eventually(timeout: 30) {
            try await conn.count("SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3600)' AND state = 'active'") == 0
        }
        XCTAssertTrue(gone)
        let stopped = try await eventually { w.stats.snapshot().finished["noop"]?["cancelled"] == 1 }
        XCTAssertTrue(stopped)
        w.requestStop()
        try await run.value
        let row = try await conn.query("SELECT state, locked_by FROM maintenance_jobs WHERE id = $1", [id]).first!
        XCTAssertEqual(row["state"], "cancelled")
        XCTAssertNil(row["locked_by"])
    }

    /// Cancelling a cycle run reaches the statement its running job is in.
    func testCancellingACycleRunCancelsItsRunningJobsStatement() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let run = try await conn.query("INSERT INTO maintenance_cycle_runs (cycle, period) VALUES ('daily', '2025-01-02') RETURNING id").first!
            .decode("id", as: Int64.self)
        let id = try await conn.withSession { try QueueStore.enqueue($0, task: "noop", args: Steered.args(.sleepsInTheServer), runID: run)! }
        let w = worker(db.url, tasks: [Steered(gate: Gate())])
        let working = Task { try await w.run() }
        let sleeping = try await eventually {
            try await conn.count("SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3600)' AND state = 'active'") == 1
        }
        XCTAssertTrue(sleeping)
        try await conn.query("SELECT maintenance_cancel_cycle_run($1)", [run])
        let gone = try await eventually(timeout: 30) {
            try await conn.count("SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3600)' AND state = 'active'") == 0
        }
        XCTAssertTrue(gone)
        w.requestStop()
        try await working.value
        let row = try await conn.query("SELECT state, locked_by FROM maintenance_jobs WHERE id = $1", [id]).first!
        XCTAssertEqual(row["state"], "cancelled")
        XCTAssertNil(row["locked_by"])
    }

    /// Shutdown cancels a statement that would run for an hour, and releases its job only
    /// after the statement stopped.
    func testShutdownCancelsTheStatementThenReleasesTheJob() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let id = try await conn.withSession { try QueueStore.enqueue($0, task: "noop", args: Steered.args(.sleepsInTheServer))! }
        let w = worker(db.url, { $0.graceSeconds = 0 }, tasks: [Steered(gate: Gate())])
        let run = Task { try await w.run() }
        let sleeping = try await eventually {
            try await conn.count("SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3600)' AND state = 'active'") == 1
        }
        XCTAssertTrue(sleeping)
        w.requestStop()
        try await run.value
        let active = try await conn.count("SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3600)' AND state = 'active'")
        XCTAssertEqual(active, 0)
        let states = try await jobStates(conn)
        XCTAssertEqual(states[id], "available/0")
    }

    /// The database stopped for twice the lease under a worker running jobs: one finishes
    /// during the outage, one after it. Both end succeeded after one attempt: the worker
    /// renews its leases before it rescues anything, and the server counts leases from its start.
    func testAnOutageLongerThanTheLeaseCausesNoRetry() async throws {
        let cluster = try TestCluster.shared()
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let gate = Gate(), later = Gate()
        let duringOutage = try await conn.withSession { try QueueStore.enqueue($0, task: "noop", args: Steered.args(.untilGateOpens))! }
        let afterOutage = try await conn.withSession { try QueueStore.enqueue($0, task: "noop", args: Steered.args(.untilLaterGateOpens))! }
        let w = worker(db.url, tasks: [Steered(gate: gate, later: later)])
        let run = Task { try await w.run() }
        let started = try await eventually { try await conn.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'running'") == 2 }
        XCTAssertTrue(started)
        try cluster.stop()
        gate.open()
        // Twice the lease (2 s) with the server down.
        try await Task.sleep(nanoseconds: 4_000_000_000)
        try cluster.start()
        let conn2 = try await PostgresConnection.connect(db.url)
        let written = try await eventually(timeout: 30) { try await conn2.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'succeeded'") == 1 }
        XCTAssertTrue(written, "the job that finished during the outage is recorded")
        // Several leases after the restart: the running job's lease was renewed, not rescued.
        try await Task.sleep(nanoseconds: 3_000_000_000)
        later.open()
        let done = try await eventually(timeout: 30) { try await conn2.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'succeeded'") == 2 }
        XCTAssertTrue(done)
        w.requestStop()
        try await run.value
        let rows = try await conn2.query("SELECT id, state, attempts, errors::text AS errors FROM maintenance_jobs ORDER BY id").map {
            "\($0["id"]!): \($0["state"]!)/\($0["attempts"]!) \($0["errors"]!)"
        }
        XCTAssertEqual(rows, ["\(duringOutage): succeeded/1 []", "\(afterOutage): succeeded/1 []"])
    }

    /// A limit for a task the worker does not run is a misspelt name, refused at start.
    func testATimeLimitForAnUnknownTaskIsRefused() async throws {
        let w = worker("dbname=unused", { $0.timeLimits["vacum"] = 60 }, tasks: [NoopTask()])
        do {
            try await w.run()
            XCTFail("started with a time limit for an unknown task")
        } catch let error as WorkerConfigurationError {
            XCTAssertEqual(error.key, "time_limits.vacum")
        }
    }
}
