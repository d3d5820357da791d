import Foundation
import JobQueue
@testable import MaintenanceTasks
import PostgresClient
import TestSupport
import XCTest

/// The vacuum task's session limits.
final class VacuumTimeoutTests: XCTestCase {
    /// REINDEX INDEX CONCURRENTLY waits for every transaction that holds a lock on the table.
    /// Behind a forgotten idle transaction it used to wait for ever; with `lock_timeout` the
    /// attempt fails (SQLSTATE 55P03), and the next attempt drops the invalid copy the failed
    /// REINDEX left behind before it rebuilds.
    func testReindexGivesUpBehindAnIdleTransactionAndTheNextAttemptCleansUp() async throws {
        let db = try TestCluster.freshDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("""
            CREATE TABLE t (id int PRIMARY KEY, v text);
            INSERT INTO t SELECT g, 'x' FROM generate_series(1, 2000) AS g;
            ANALYZE t;
            """)
        let holder = try await PostgresConnection.connect(db.url)
        try await holder.execute("BEGIN; INSERT INTO t VALUES (100000, 'held')")
        let settings = VacuumSettings(tables: ["t"], reindexBloatThreshold: 0, reindexMinimumBytes: 0)
        let timeouts = TaskTimeouts(ddlLockSeconds: 0.5, shortStatementSeconds: 60)
        do {
            _ = try await VacuumTask.execute(
                settings: settings, tables: nil, reindex: true, connection: conn, timeouts: timeouts, checkCancellation: {})
            XCTFail("REINDEX went through a held lock")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, "55P03", "\(error)")
        }
        try await conn.execute("SET lock_timeout = 0")
        try await holder.execute("ROLLBACK")
        let invalid = "SELECT count(*) AS n FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE 't_pkey_ccnew%'"
        let left = try await conn.query(invalid).first!.decode("n", as: Int.self)
        XCTAssertEqual(left, 1, "the failed REINDEX left its invalid copy")
        let report = try await VacuumTask.execute(
            settings: settings, tables: nil, reindex: true, connection: conn, timeouts: timeouts, checkCancellation: {})
        XCTAssertEqual(report.reindexed.map(\.index), ["public.t_pkey"])
        let after = try await conn.query(invalid).first!.decode("n", as: Int.self)
        XCTAssertEqual(after, 0)
    }
}

/// Retention and compression under the worker's session limits (`TaskTimeouts`).
final class TaskTimeoutTests: XCTestCase {
    /// A retention batch behind another transaction's row locks used to wait for ever. Each
    /// batch runs under the short `statement_timeout`, which bounds lock waits too (a short
    /// `lock_timeout` would also fail batches behind brief, ordinary writes), so the batch fails
    /// with SQLSTATE 57014 and an error naming the table.
    func testRetentionBatchBlockedByARowLockFailsNamingTheTable() async throws {
        let db = try TestCluster.freshDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("""
            CREATE TABLE events (id int PRIMARY KEY, at timestamptz NOT NULL);
            INSERT INTO events SELECT g, now() - interval '400 days' FROM generate_series(1, 50) AS g;
            """)
        let holder = try await PostgresConnection.connect(db.url)
        try await holder.execute("BEGIN; SELECT id FROM events FOR UPDATE")
        let settings = RetentionSettings(rules: [RetentionRule(table: "events", column: "at", days: 30)], batchSize: 10)
        do {
            _ = try await RetentionTask.execute(
                settings: settings, tables: nil, dryRun: false, connection: conn, previous: RetentionTask.Progress(),
                timeouts: TaskTimeouts(shortStatementSeconds: 0.5), checkCancellation: {}, checkpoint: { _ in })
            XCTFail("a batch went through row locks held by another transaction")
        } catch let MaintenanceError.database(operation, error) {
            XCTAssertEqual(error.sqlState, "57014", "\(error)")
            XCTAssertTrue(operation.contains("from public.events"), operation)
            XCTAssertTrue(operation.contains("statement_timeout_seconds = 0.5"), operation)
        }
        try await holder.execute("ROLLBACK")
        let report = try await RetentionTask.execute(
            settings: settings, tables: nil, dryRun: false, connection: conn, previous: RetentionTask.Progress(),
            timeouts: TaskTimeouts(shortStatementSeconds: 0.5), checkCancellation: {}, checkpoint: { _ in })
        XCTAssertEqual(report.totalRowsRemoved, 50)
    }

    /// A compression that gives up on a lock leaves the session's `lock_timeout` and
    /// `statement_timeout` as they were before it.
    func testFailedCompressionResetsTheSessionTimeouts() async throws {
        let db = try TestCluster.timescaleDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("""
            CREATE TABLE ticks (symbol text NOT NULL, at timestamptz NOT NULL, price double precision);
            SELECT create_hypertable('ticks', 'at', chunk_time_interval => interval '1 day');
            INSERT INTO ticks SELECT 'AAPL', now() - g * interval '1 day', g FROM generate_series(10, 20) AS g;
            """)
        let before = try await conn.query("SELECT current_setting('lock_timeout') AS l, current_setting('statement_timeout') AS s").first
        let holder = try await PostgresConnection.connect(db.url)
        try await holder.execute("BEGIN; SELECT count(*) FROM ticks")
        let settings = CompressSettings(lockTimeoutMilliseconds: 200, tables: ["ticks"])
        do {
            _ = try await CompressTask.execute(
                settings: settings, connection: conn, timeouts: TaskTimeouts(shortStatementSeconds: 60), checkCancellation: {})
            XCTFail("compression went on while the table was locked")
        } catch let MaintenanceError.database(operation, error) {
            XCTAssertEqual(error.sqlState, "55P03", "\(error)")
            XCTAssertTrue(operation.contains("public.ticks"), operation)
        }
        try await holder.execute("ROLLBACK")
        let after = try await conn.query("SELECT current_setting('lock_timeout') AS l, current_setting('statement_timeout') AS s").first
        XCTAssertEqual(after?["l"], before?["l"])
        XCTAssertEqual(after?["s"], before?["s"])
    }
}
