import Foundation
import Toolkit
import JobQueue
import Polygon
import PostgresClient
import SampleMarket
import TestSupport
import XCTest
@testable import MarketDataTasks

final class CompletenessTests: XCTestCase {
    struct Table: Decodable {
        var expected: Int
        var present: Int
        var missing_before: Int
        var quarantined: Int
        var percent: Double?
        var missing_days: [String]
    }

    struct Result: Decodable {
        var tables: [String: Table]
        var refetched: ResultCounts
        var refetch_pending: Int
        var requests: Int
    }

    func testDeletedDaysAreReportedRestoredAndCompletenessReadsFullAfterwards() async throws {
        let today = CivilDate.today()
        let universe = ["AAPL", "MSFT", "JPM", "ZAAA"]
        let fixture = try await MarketFixture(symbols: universe, from: today.adding(days: -200), through: today)
        try await fixture.seed(universe)
        _ = try await fixture.run(OHLCDailyTask(client: fixture.client), args: #"{"days": 30}"#)
        _ = try await fixture.run(VolumeSlotsTask(client: fixture.client), args: #"{"days": 10}"#)

        let clean = try await fixture.run(CompletenessTask(client: fixture.client), args: "{}").decode(Result.self)
        XCTAssertEqual(clean.tables["market_data_daily"]?.percent, 100)
        XCTAssertEqual(clean.tables["volume_slots"]?.percent, 100)
        XCTAssertEqual(clean.requests, 0)
        let tradingDays = try await fixture.connection.query("""
            SELECT g::date::text AS day FROM generate_series($1::date - 29, $1::date, interval '1 day') g
             WHERE maintenance_is_trading_day(g::date) ORDER BY g
            """, [NewYorkTime.today().adding(days: -1).description]).map { $0["day"]! }
        XCTAssertEqual(clean.tables["market_data_daily"]?.expected, tradingDays.count * universe.count)

        // Three days from the middle of the daily history, one day of one symbol's slots.
        let middle = Array(tradingDays[tradingDays.count / 2 - 1...tradingDays.count / 2 + 1])
        _ = try await fixture.connection.query("DELETE FROM market_data_daily WHERE date = ANY ($1::date[])", [middle])
        _ = try await fixture.connection.query("DELETE FROM market_data_daily WHERE symbol = 'JPM' AND date = $1::date", [tradingDays[2]])
        let slotDay = try await fixture.connection.query(
            "SELECT max(date)::text AS d FROM volume_slots WHERE date < $1::date", [NewYorkTime.today().adding(days: -2).description]).first!["d"]!
        _ = try await fixture.connection.query("DELETE FROM volume_slots WHERE symbol = 'MSFT' AND date = $1::date", [slotDay])

        // A bound of 2 units: the two newest missing dates are refetched, the rest wait.
        let bounded = try await fixture.run(CompletenessTask(client: fixture.client), args: #"{"max_refetch": 2}"#).decode(Result.self)
        let daily = try XCTUnwrap(bounded.tables["market_data_daily"])
        XCTAssertEqual(daily.missing_before, 3 * universe.count + 1)
        XCTAssertEqual(bounded.refetched.ok, 2)
        XCTAssertEqual(bounded.refetch_pending, 3)   // one daily date, JPM's date and MSFT's slots
        XCTAssertEqual(Set(daily.missing_days), Set([middle[0], tradingDays[2]]))
        XCTAssertLessThan(daily.percent ?? 100, 100)
        let recorded = try await fixture.connection.query(
            "SELECT expected - present AS missing FROM market_data_completeness WHERE table_name = 'market_data_daily' AND day = $1::date",
            [middle[0]]).first!
        XCTAssertEqual(recorded["missing"], "\(universe.count)")

        let mended = try await fixture.run(CompletenessTask(client: fixture.client), args: "{}").decode(Result.self)
        XCTAssertEqual(mended.tables["market_data_daily"]?.missing_before, universe.count + 1)
        XCTAssertEqual(mended.tables["volume_slots"]?.missing_before, 1)
        XCTAssertEqual(mended.refetched.ok, 3)
        XCTAssertEqual(mended.tables["market_data_daily"]?.percent, 100)
        XCTAssertEqual(mended.tables["volume_slots"]?.percent, 100)
        let restored = try await fixture.connection.query(
            "SELECT volume::text FROM market_data_daily WHERE symbol = 'AAPL' AND date = $1::date", [middle[1]]).first
        XCTAssertEqual(exact(restored?["volume"]), exact(fixture.data.dailyBar(symbol: "AAPL", date: CivilDate(middle[1])!)!.volume))

        let summary = try await fixture.connection.query("SELECT table_name, percent::float8 AS percent FROM market_data_completeness_summary(30)")
        XCTAssertEqual(summary.map { "\($0["table_name"]!)=\($0["percent"]!)" }, ["market_data_daily=100", "volume_slots=100"])

        // A bar validate quarantined is missing, but refetching would bring the same bad bar back.
        _ = try await fixture.connection.query("UPDATE market_data_daily SET volume = -1 WHERE symbol = 'AAPL' AND date = $1::date",
                                               [middle[1]])
        _ = try await fixture.run(ValidateTask(), args: "{}")
        let quarantined = try await fixture.run(CompletenessTask(client: fixture.client), args: "{}").decode(Result.self)
        XCTAssertEqual(quarantined.tables["market_data_daily"]?.missing_before, 1)
        XCTAssertEqual(quarantined.tables["market_data_daily"]?.quarantined, 1)
        XCTAssertEqual(quarantined.refetched.ok + quarantined.refetched.failed, 0)
        XCTAssertEqual(quarantined.tables["market_data_daily"]?.missing_days, [middle[1]])
        await fixture.stop()
    }
}
