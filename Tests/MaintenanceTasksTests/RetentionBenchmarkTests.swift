import Benchmarks
import Foundation
import MaintenanceTasks
import PostgresClient
import TestSupport
import XCTest

final class RetentionBenchmarkTests: XCTestCase {
    /// Runs the benchmark on a small table (set CLOSEBELL_BENCH_ROWS for real figures) and
    /// checks both methods deleted the same rows; prints the figures, asserts no timing.
    func testBenchmarkDeletesTheSameRowsBothWays() async throws {
        let db = try TestCluster.migratedDatabase()
        let rows = Int(ProcessInfo.processInfo.environment["CLOSEBELL_BENCH_ROWS"] ?? "") ?? 8_000
        let batch = Int(ProcessInfo.processInfo.environment["CLOSEBELL_BENCH_BATCH"] ?? "") ?? 1_000
        let report = try await RetentionBenchmark.run(conninfo: db.url, rows: rows, batchSize: batch)
        print(report.summary)
        XCTAssertEqual(report.rowsLoaded, rows / 400 * 400)
        // Dates span the last 400 days; the 199 oldest are past a 200-day window.
        XCTAssertEqual(report.rowsDeleted, report.rowsLoaded / 400 * 199)
        XCTAssertEqual(report.batches, report.rowsDeleted / batch + 1)
        let conn = try await PostgresConnection.connect(db.url)
        let left = try await conn.query("SELECT to_regclass($1) IS NULL AS gone", [RetentionBenchmark.table]).first?.decode("gone", as: Bool.self)
        XCTAssertEqual(left, true)
    }
}
