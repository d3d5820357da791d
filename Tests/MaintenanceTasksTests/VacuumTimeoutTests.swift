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
