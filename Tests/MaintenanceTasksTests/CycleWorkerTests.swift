import Foundation
import JobQueue
import Logging
import MaintenanceTasks
import PostgresClient
import TestSupport
import XCTest

/// A whole cycle run by the real worker runtime: stages in order, a failing task, the outcome.
final class CycleWorkerTests: XCTestCase {
    /// A table retention does not know can never succeed: the worker fails the job at its
    /// first attempt, not after max_attempts.
    func testUnknownRetentionTableFailsAfterOneAttempt() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute(#"INSERT INTO maintenance_jobs (task, args, max_attempts) VALUES ('retention', '{"tables": ["nope"]}', 5)"#)
        var config = WorkerConfiguration(workerID: "maint-nope")
        config.pollSeconds = 0.2
        config.retryBaseSeconds = 0.01
        config.retryMaxSeconds = 0.05
        config.exitWhenIdleSeconds = 1
        let worker = Worker(
            conninfo: db.url, registry: TaskRegistry([RetentionTask()]), configuration: config,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        try await worker.run()
        let rows = try await conn.query("SELECT state, attempts, errors -> 0 ->> 'error' AS error FROM maintenance_jobs")
        let row = try XCTUnwrap(rows.first)
        XCTAssertEqual(row["state"], "failed")
        XCTAssertEqual(row["attempts"], "1")
        XCTAssertEqual(row["error"], #"table "nope" does not exist"#)
    }

    func testTwoWorkersRunACycleStageByStage() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await createMarketTables(conn)
        try await conn.execute(
            """
            INSERT INTO market_data_daily (symbol, date, open, high, low, close, volume)
            SELECT 'S' || s, (now() AT TIME ZONE 'America/New_York')::date - d, 1, 1, 1, 1, 1
              FROM generate_series(1, 5) s, generate_series(0, 299) d;
            INSERT INTO maintenance_cycles (cycle, period) VALUES ('e2e', 'day');
            INSERT INTO maintenance_cycle_tasks (cycle, stage, task, args) VALUES
              ('e2e', 1, 'noop', '{"sleep_ms": 50}'),
              ('e2e', 2, 'retention', '{"tables": ["market_data_daily"]}'),
              ('e2e', 2, 'noop', '{"fail_times": 9}'),
              ('e2e', 3, 'vacuum', '{"tables": ["market_data_daily"]}'),
              ('e2e', 3, 'compress', '{}');
            """)
        let (runID, created) = try await CycleStore.enqueue(cycle: "e2e", force: true, connection: conn)
        XCTAssertTrue(created)

        var config = WorkerConfiguration(workerID: "maint-e2e")
        config.concurrency = 4
        config.leaseSeconds = 4
        config.pollSeconds = 0.2
        config.rescueSeconds = 0.5
        config.graceSeconds = 2
        config.retryBaseSeconds = 0.01
        config.retryMaxSeconds = 0.05
        config.exitWhenIdleSeconds = 1.5
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let registry = TaskRegistry([
            NoopTask(), RetentionTask(settings: RetentionSettings(batchSize: 100)), VacuumTask(), CompressTask(),
        ])
        let url = db.url
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<2 {
                var c = config
                c.workerID = "maint-e2e-\(n)"
                let worker = Worker(conninfo: url, registry: registry, configuration: c, logger: logger)
                group.addTask { try await worker.run() }
            }
            group.addTask {
                try await Task.sleep(for: .seconds(90))
                throw CancellationError()
            }
            _ = try await group.next()
            _ = try await group.next()
            group.cancelAll()
        }

        let runs = try await CycleStore.recentRuns(connection: conn)
        let run = try XCTUnwrap(runs.first { $0.id == runID })
        XCTAssertEqual(run.state, "partial")
        XCTAssertEqual(run.jobCounts, ["succeeded": 4, "failed": 1])
        // Each stage started only after every job of the previous one had finished.
        let ordered = try await conn.query(
            """
            WITH s AS (SELECT (e->>'stage')::int AS stage, (jsonb_array_elements(e->'jobs'))::text::bigint AS id
                         FROM maintenance_cycle_runs r, jsonb_array_elements(r.stages) e WHERE r.id = $1)
            SELECT bool_and(later.created_at >= earlier.finished_at) AS ok, count(*) AS pairs
              FROM s a JOIN maintenance_jobs earlier ON earlier.id = a.id
              JOIN s b ON b.stage = a.stage + 1 JOIN maintenance_jobs later ON later.id = b.id
            """, [runID]).first
        XCTAssertEqual(try ordered?.decode("ok", as: Bool.self), true)
        XCTAssertEqual(try ordered?.decode("pairs", as: Int.self), 1 * 2 + 2 * 2)
        let left = try await conn.query("SELECT count(*) AS n FROM market_data_daily").first?.decode("n", as: Int.self)
        XCTAssertEqual(left, 5 * 201)
        let outcome = try XCTUnwrap(run.outcomeJSON)
        XCTAssertTrue(outcome.contains("timescaledb extension not installed"))
        XCTAssertTrue(outcome.contains("\"rows_removed\": 495"), outcome)
    }
}
