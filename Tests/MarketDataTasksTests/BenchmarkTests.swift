import Benchmarks
import Foundation
import PostgresClient
import TestSupport
import XCTest
@testable import MarketDataTasks

/// The ingest benchmark runs end to end on a small day (figures are printed, never asserted).
final class BenchmarkTests: XCTestCase {
    func testIngestBenchmarkWritesAndCopiesTheSameRows() async throws {
        let db = try TestCluster.migratedDatabase()
        let report = try await IngestBenchmark.run(
            conninfo: db.url, dailySymbols: 300, minuteSymbols: 3,
            api: .init(symbols: 6, days: 2, latency: 0.01, requestsPerSecond: 200, concurrency: 4), repeats: 2)
        print(report.text)
        XCTAssertEqual(report.slotRows, 3 * 192)
        XCTAssertEqual(report.minuteBars, 3 * 960)
        XCTAssertEqual(report.measurements.count, 10)
        XCTAssertNotNil(report.ratio(IngestBenchmark.Labels.dailyEmpty, to: IngestBenchmark.Labels.dailyCopy))
        XCTAssertNotNil(report.ratio(IngestBenchmark.Labels.slotsEmpty, to: IngestBenchmark.Labels.slotsCopy))
        XCTAssertTrue(report.measurements.allSatisfy { $0.rows > 0 })
        // 2 grouped-daily requests + one minute request per symbol.
        XCTAssertEqual(report.apiRun?.requests, 2 + 6)
        // The scratch schema is gone and the real tables were never touched.
        let conn = try await PostgresConnection.connect(db.url)
        let left = try await conn.query("SELECT count(*) AS n FROM pg_namespace WHERE nspname = 'closebell_bench'").first?.decode("n", as: Int.self)
        XCTAssertEqual(left, 0)
        let rows = try await conn.query("SELECT count(*) AS n FROM market_data_daily").first?.decode("n", as: Int.self)
        XCTAssertEqual(rows, 0)
        await conn.close()
    }
}

/// The full-size benchmark, run by hand: `CLOSEBELL_BENCH_FULL=1 .build/release/closebellPackageTests.xctest
/// MarketDataTasksTests.FullBenchmark` (skipped otherwise; it prints figures and asserts nothing about them).
final class FullBenchmark: XCTestCase {
    func testFullMarketDay() async throws {
        guard ProcessInfo.processInfo.environment["CLOSEBELL_BENCH_FULL"] == "1" else { throw XCTSkip("set CLOSEBELL_BENCH_FULL=1") }
        let db = try TestCluster.migratedDatabase()
        let env = ProcessInfo.processInfo.environment
        var api = IngestBenchmark.APIRunOptions()
        if let v = env["CLOSEBELL_BENCH_RPS"].flatMap(Double.init) { api.requestsPerSecond = v }
        if let v = env["CLOSEBELL_BENCH_LATENCY"].flatMap(Double.init) { api.latency = v }
        if let v = env["CLOSEBELL_BENCH_CONCURRENCY"].flatMap(Int.init) { api.concurrency = v }
        if let v = env["CLOSEBELL_BENCH_DAYS"].flatMap(Int.init) { api.days = v }
        let report = try await IngestBenchmark.run(conninfo: db.url, api: api)
        print(report.text)
    }
}
