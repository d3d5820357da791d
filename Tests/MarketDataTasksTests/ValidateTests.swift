import Foundation
import JobQueue
import Polygon
import PostgresClient
import SampleMarket
import TestSupport
import XCTest
@testable import MarketDataTasks

final class ValidateTests: XCTestCase {
    struct Table: Decodable {
        var checked: Int
        var quarantined: Int
        var reasons: [String: Int]
    }

    struct Result: Decodable {
        var tables: [String: Table]
        var quarantined: Int
        var dry_run: Bool
    }

    func testInvalidBarsAndSlotsAreQuarantinedWithTheirReasons() async throws {
        let fixture = try await MarketFixture(symbols: ["AAPL", "MSFT", "KO"])
        try await fixture.seed(["AAPL", "MSFT", "KO"])
        // 2025-04-14 .. 2025-04-25 includes Good Friday (04-18): the sample server, like the real
        // API, serves no bars that day, so bars dated on it (a bad feed) are written directly.
        let range = #"{"from": "2025-04-14", "to": "2025-04-25"}"#
        _ = try await fixture.run(OHLCDailyTask(client: fixture.client), args: range)
        _ = try await fixture.run(VolumeSlotsTask(client: fixture.client), args: #"{"from": "2025-04-21", "to": "2025-04-22", "symbols": ["AAPL"]}"#)
        let c = fixture.connection
        let loaded = try await c.query("SELECT count(*)::int AS n FROM market_data_daily").first!.decode("n", as: Int.self)
        XCTAssertEqual(loaded, 3 * 9, "no bars on Good Friday")
        let goodFriday = """
            INSERT INTO market_data_daily
            SELECT (jsonb_populate_record(NULL::market_data_daily, to_jsonb(d) || '{"date": "2025-04-18"}')).*
              FROM market_data_daily d WHERE date = '2025-04-17'
            ON CONFLICT DO NOTHING
            """
        _ = try await c.query(goodFriday)
        _ = try await c.query("UPDATE market_data_daily SET high = least(open, close) - 1 WHERE symbol = 'AAPL' AND date = '2025-04-14'")
        _ = try await c.query("UPDATE market_data_daily SET low = greatest(open, close) + 1 WHERE symbol = 'MSFT' AND date = '2025-04-15'")
        _ = try await c.query("UPDATE market_data_daily SET volume = -5 WHERE symbol = 'KO' AND date = '2025-04-16'")
        _ = try await c.query("UPDATE market_data_daily SET open = 0 WHERE symbol = 'KO' AND date = '2025-04-17'")
        _ = try await c.query("UPDATE volume_slots SET volume = -1 WHERE symbol = 'AAPL' AND date = '2025-04-21' AND slot_index = 100")
        let before = try await c.query("SELECT count(*)::int AS n FROM market_data_daily").first!.decode("n", as: Int.self)
        XCTAssertEqual(before, 3 * 10)

        let dry = try await fixture.run(ValidateTask(), args: #"{"days": 0, "dry_run": true}"#).decode(Result.self)
        XCTAssertTrue(dry.dry_run)
        XCTAssertEqual(dry.quarantined, 8)
        let quarantinedByDryRun = try await c.query("SELECT count(*)::int AS n FROM market_data_quarantine").first!.decode("n", as: Int.self)
        XCTAssertEqual(quarantinedByDryRun, 0)

        let result = try await fixture.run(ValidateTask(), args: #"{"days": 0}"#).decode(Result.self)
        let daily = try XCTUnwrap(result.tables["market_data_daily"])
        XCTAssertEqual(daily.checked, 30)
        XCTAssertEqual(daily.quarantined, 7)
        XCTAssertEqual(daily.reasons["not an NYSE trading day"], 3)
        XCTAssertEqual(daily.reasons["high below max(open, close)"], 1)
        XCTAssertEqual(daily.reasons["low above min(open, close)"], 1)
        XCTAssertEqual(daily.reasons["negative or NULL volume"], 1)
        XCTAssertEqual(daily.reasons["zero or NULL price; low above min(open, close)"], 1)
        XCTAssertEqual(result.tables["volume_slots"]?.reasons, ["negative or NULL volume": 1])
        XCTAssertEqual(result.quarantined, 8)
        let left = try await c.query("SELECT count(*)::int AS n FROM market_data_daily").first!.decode("n", as: Int.self)
        XCTAssertEqual(left, 23)
        let kept = try await c.query("""
            SELECT row_data ->> 'volume' AS volume, reason FROM market_data_quarantine
             WHERE table_name = 'market_data_daily' AND symbol = 'KO' AND date = '2025-04-16'
            """).first
        XCTAssertEqual(kept?["volume"], "-5")
        let slot = try await c.query("SELECT slot_index FROM market_data_quarantine WHERE table_name = 'volume_slots'").first
        XCTAssertEqual(slot?["slot_index"], "100")

        // Clean now; the same holiday bars arriving again are counted twice.
        let again = try await fixture.run(ValidateTask(), args: #"{"days": 0}"#).decode(Result.self)
        XCTAssertEqual(again.quarantined, 0)
        _ = try await fixture.run(OHLCDailyTask(client: fixture.client), args: range)
        _ = try await c.query(goodFriday)
        let third = try await fixture.run(ValidateTask(), args: #"{"days": 0, "tables": ["market_data_daily"]}"#).decode(Result.self)
        XCTAssertEqual(third.tables["market_data_daily"]?.reasons, ["not an NYSE trading day": 3])
        let times = try await c.query("SELECT times FROM market_data_quarantine WHERE symbol = 'AAPL' AND date = '2025-04-18'").first
        XCTAssertEqual(times?["times"], "2")

        do {
            _ = try await fixture.run(ValidateTask(), args: #"{"tables": ["ticker_metadata"]}"#)
            XCTFail("an unknown table must be refused")
        } catch let error as InvalidJobArguments {
            XCTAssertTrue("\(error)".contains("ticker_metadata"))
        }
        await fixture.stop()
    }
}
