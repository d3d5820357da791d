import Foundation
@testable import Operations
import PostgresClient
import TestSupport
import XCTest

/// The report's completeness line, from what the completeness task records.
final class CompletenessReportTests: XCTestCase {
    func testReportSaysWhatShareOfSymbolDaysIsPresent() async throws {
        let db = try TestCluster.migratedDatabase()
        let connection = try await PostgresConnection.connect(db.url)
        _ = try await connection.query("""
            INSERT INTO market_data_completeness (table_name, day, expected, present)
            SELECT 'market_data_daily', (now() AT TIME ZONE 'America/New_York')::date - d, 100, CASE WHEN d = 3 THEN 87 ELSE 100 END
              FROM generate_series(1, 10) AS d
            """)
        let report = try await OperationsReport.build(connection: connection, period: .day)
        XCTAssertEqual(report.completeness?.first?.expected, 1000)
        XCTAssertEqual(report.completeness?.first?.present, 987)
        let text = try report.render(.text)
        XCTAssertTrue(text.contains("market_data_daily: 98.7% of symbol-days present over 10 trading days (13 missing)"), text)
        XCTAssertTrue(try report.render(.csv).contains("completeness,market_data_daily,10 days,percent,98.700"))
        XCTAssertTrue(try report.render(.html).contains("Data completeness"))
        // The same figure feeds closebell_market_data_completeness_percent{table} on /metrics.
        let metric = try await connection.withSession { try QueueSnapshot.read($0, runningLimit: 0).completeness }
        XCTAssertEqual(metric, ["market_data_daily": 98.7])
        await connection.close()
    }
}
