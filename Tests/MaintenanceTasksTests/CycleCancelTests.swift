import Foundation
import PostgresClient
import TestSupport
import XCTest

/// Cancelling a run must take its locks in the order a worker's completion does.
final class CycleCancelTests: XCTestCase {
    func testCancelLocksJobRowsBeforeTheRunRow() async throws {
        let db = try TestCluster.migratedDatabase()
        let worker = try await PostgresConnection.connect(db.url)
        let canceller = try await PostgresConnection.connect(db.url)
        let runID: Int64 = try await worker.query("SELECT run_id FROM maintenance_enqueue_cycle('weekly', NULL, true)").first!.decode("run_id")
        let jobID: Int64 = try await worker.query("SELECT min(id) AS id FROM maintenance_jobs WHERE run_id = $1", [runID]).first!.decode("id")
        // A completion in flight: it holds the job row and will lock the run row next.
        try await worker.execute("BEGIN")
        try await worker.query("SELECT 1 FROM maintenance_jobs WHERE id = $1 FOR UPDATE", [jobID])
        let cancel = Task { try await canceller.query("SELECT maintenance_cancel_cycle_run($1) AS n", [runID]).first?.decode("n", as: Int.self) }
        try await Task.sleep(nanoseconds: 300_000_000)
        // The cancel waits on the job row and has not taken the run row, so the completion can.
        try await worker.query("SELECT 1 FROM maintenance_cycle_runs WHERE id = $1 FOR UPDATE NOWAIT", [runID])
        try await worker.execute("COMMIT")
        let cancelled = try await cancel.value
        XCTAssertGreaterThanOrEqual(cancelled ?? 0, 1)
        let state = try await worker.query("SELECT state FROM maintenance_cycle_runs WHERE id = $1", [runID]).first?["state"]
        XCTAssertEqual(state, "cancelled")
    }
}
