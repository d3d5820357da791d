import Foundation
import MaintenanceTasks
import PostgresClient
import TestSupport
import XCTest

/// Migration 0060: the cycle trigger's functions run only for completions that end a job of a
/// cycle run, never for claims, heartbeats, progress writes or releases.
final class CycleTriggerTests: XCTestCase {
    /// Runs `statements` in one transaction with function tracking on; returns how many times
    /// each cycle trigger function was called by them (counters read before and after, since
    /// the view also holds counts not yet flushed from earlier transactions).
    private func calls(_ conn: PostgresConnection, _ statements: [String]) async throws -> [String: Int] {
        let counters = """
            SELECT funcname, calls FROM pg_stat_xact_user_functions
            WHERE funcname IN ('maintenance_jobs_cycle_mark', 'maintenance_jobs_cycle_advance', 'maintenance_cycle_advance')
            """
        try await conn.execute("BEGIN")
        try await conn.execute("SET LOCAL track_functions = 'pl'")
        var before: [String: Int] = [:]
        for row in try await conn.query(counters) { before[row["funcname"] ?? ""] = Int(row["calls"] ?? "") ?? 0 }
        for statement in statements { try await conn.execute(statement) }
        var result: [String: Int] = [:]
        for row in try await conn.query(counters) {
            let name = row["funcname"] ?? "", delta = (Int(row["calls"] ?? "") ?? 0) - before[name, default: 0]
            if delta != 0 { result[name] = delta }
        }
        try await conn.execute("COMMIT")
        return result
    }

    func testOnlyCompletionsThatEndAJobRunTheCycleTrigger() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let run = try await CycleStore.enqueue(cycle: "weekly", period: "2026-11-16", connection: conn)
        let busy = try await calls(conn, [
            // A claim, a heartbeat, a progress write, a release, a claim again, a retry.
            "UPDATE maintenance_jobs SET state = 'running', attempts = attempts + 1, locked_by = 'w' WHERE run_id = \(run.runID)",
            "UPDATE maintenance_jobs SET heartbeat_at = now(), lease_expires_at = now() + interval '1 minute' WHERE run_id = \(run.runID)",
            "UPDATE maintenance_jobs SET progress = '{\"done\": 1}' WHERE run_id = \(run.runID)",
            "UPDATE maintenance_jobs SET state = 'available', attempts = attempts - 1, locked_by = NULL WHERE run_id = \(run.runID)",
            "UPDATE maintenance_jobs SET state = 'running', attempts = attempts + 1, locked_by = 'w' WHERE run_id = \(run.runID)",
            "UPDATE maintenance_jobs SET state = 'available', locked_by = NULL WHERE run_id = \(run.runID)",
        ])
        XCTAssertEqual(busy, [:], "no cycle function ran")
        let done = try await calls(conn, [
            "UPDATE maintenance_jobs SET state = 'succeeded', locked_by = NULL WHERE run_id = \(run.runID)",
        ])
        XCTAssertEqual(done["maintenance_jobs_cycle_mark"], 1)
        XCTAssertEqual(done["maintenance_jobs_cycle_advance"], 1)
        XCTAssertEqual(done["maintenance_cycle_advance"], 1)
        let next = try await conn.query(
            "SELECT string_agg(task || ':' || state, ',' ORDER BY id) AS jobs FROM maintenance_jobs WHERE run_id = $1", [run.runID]).first?["jobs"]
        XCTAssertEqual(next, "vacuum:succeeded,compress:available", "the completion started the next stage")
        // Jobs outside cycles never run them either.
        let plain = try await calls(conn, [
            "INSERT INTO maintenance_jobs (task) VALUES ('noop')",
            "UPDATE maintenance_jobs SET state = 'succeeded' WHERE run_id IS NULL",
        ])
        XCTAssertEqual(plain, [:])
    }

    func testAStateSetByHandStillGetsItsFinishTime() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("INSERT INTO maintenance_jobs (task) VALUES ('noop'), ('noop')")
        try await conn.execute("UPDATE maintenance_jobs SET state = 'running'")
        try await conn.execute("UPDATE maintenance_jobs SET state = 'cancelled' WHERE id = (SELECT min(id) FROM maintenance_jobs)")
        try await conn.execute("UPDATE maintenance_jobs SET state = 'succeeded', finished_at = '2026-01-02T03:04:05Z' WHERE state = 'running'")
        let rows = try await conn.query("SELECT state, finished_at IS NOT NULL AS stamped, finished_at = '2026-01-02T03:04:05Z' AS given FROM maintenance_jobs ORDER BY id")
        XCTAssertEqual(rows.map { $0["state"] }, ["cancelled", "succeeded"])
        XCTAssertEqual(rows.map { $0["stamped"] }, ["t", "t"], "the cancel by hand got its finished_at")
        XCTAssertEqual(rows.map { $0["given"] }.last, "t", "a finished_at given by the update is kept")
    }

    func testAFailedStatementLeavesNoMarkedRunBehind() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let run = try await CycleStore.enqueue(cycle: "weekly", period: "2026-11-16", connection: conn)
        try await conn.execute("BEGIN")
        try await conn.execute("SAVEPOINT s")
        do {
            // Marks the run, then fails on the CHECK of attempts.
            try await conn.execute("UPDATE maintenance_jobs SET state = 'succeeded', attempts = -1 WHERE run_id = \(run.runID)")
            XCTFail("the update was accepted")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, "23514")
        }
        try await conn.execute("ROLLBACK TO SAVEPOINT s")
        let marked = try await conn.query("SELECT coalesce(current_setting('closebell.cycle_runs_ended', true), '') AS v").first?["v"]
        XCTAssertEqual(marked, "")
        try await conn.execute("COMMIT")
        let jobs = try await conn.query("SELECT count(*) AS n FROM maintenance_jobs WHERE run_id = $1", [run.runID]).first?["n"]
        XCTAssertEqual(jobs, "1", "no stage started")
    }
}
