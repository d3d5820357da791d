import Foundation
import Toolkit
import JobQueue
import Polygon
import PostgresClient
import SampleMarket
import TestSupport
import XCTest
@testable import MarketDataTasks

final class HistoryTests: XCTestCase {
    struct Result: Decodable {
        var from: String
        var history_symbols: Int?
        var requests: Int
        var rows_written: Int
    }

    /// The mean of the newest `n` daily volumes the sample server has for `symbol` up to `today`,
    /// computed from the generator (not from the database).
    private func independentMean(_ data: SampleMarketData, symbol: String, n: Int, today: CivilDate) -> Decimal {
        let days = data.tradingDays(from: data.firstDate, through: today).suffix(n)
        XCTAssertEqual(days.count, n)
        let sum = days.compactMap { data.dailyBar(symbol: symbol, date: $0) }.map { exact($0.volume) }.reduce(Decimal(0), +)
        return sum / Decimal(n)
    }

    func testOneDailyRunOnAFreshInstallGivesFiftyBarAverages() async throws {
        let today = CivilDate.today()
        let universe = ["AAPL", "MSFT", "JPM", "ZAAA", "ZCAB"]
        let fixture = try await MarketFixture(symbols: universe + ["LATE"], from: today.adding(days: -200), through: today)
        try await fixture.seed(universe)
        // The daily cycle's arguments: 30 days. History is missing, so the range reaches back.
        let first = try await fixture.run(OHLCDailyTask(client: fixture.client), args: #"{"days": 30}"#).decode(Result.self)
        XCTAssertEqual(first.history_symbols, universe.count)
        let from = try XCTUnwrap(CivilDate(first.from))
        XCTAssertLessThan(from, NewYorkTime.today().adding(days: -29))
        let tradingDaysLoaded = try await fixture.connection.query(
            "SELECT count(*)::int AS n FROM generate_series($1::date, $2::date, interval '1 day') g WHERE maintenance_is_trading_day(g::date)",
            [first.from, NewYorkTime.today().description]).first!.decode("n", as: Int.self)
        XCTAssertEqual(tradingDaysLoaded, 60)   // 50 + the default margin of 10
        _ = try await fixture.run(VolumeStatsTask(), args: "{}")

        for symbol in universe {
            let row = try await fixture.connection.query("SELECT * FROM ticker_volume_stats WHERE symbol = $1", [symbol]).first!
            XCTAssertEqual(try row.decode("bars_50d", as: Int.self), 50, symbol)
            XCTAssertEqual(row["complete_50d"], "t", symbol)
            XCTAssertEqual(try row.decode("bars_5d", as: Int.self), 5)
            var difference = try row.decode("avg_volume_50d", as: Decimal.self) - independentMean(fixture.data, symbol: symbol, n: 50, today: today)
            var rounded = Decimal()
            NSDecimalRound(&rounded, &difference, 8, .plain)
            XCTAssertEqual(rounded, 0, symbol)
        }

        // With history in place, the next run loads its 30 days only.
        let second = try await fixture.run(OHLCDailyTask(client: fixture.client), args: #"{"days": 30}"#).decode(Result.self)
        XCTAssertNil(second.history_symbols)
        XCTAssertEqual(second.from, NewYorkTime.today().adding(days: -29).description)

        // A symbol added later is short of history: the range reaches back again.
        _ = try await fixture.connection.query("INSERT INTO ticker_universe (symbol) VALUES ('LATE')")
        let third = try await fixture.run(OHLCDailyTask(client: fixture.client), args: #"{"days": 30}"#).decode(Result.self)
        XCTAssertEqual(third.history_symbols, 1)
        _ = try await fixture.run(VolumeStatsTask(), args: #"{"symbols": ["LATE"]}"#)
        let late = try await fixture.connection.query("SELECT bars_50d FROM ticker_volume_stats WHERE symbol = 'LATE'").first!
        XCTAssertEqual(try late.decode("bars_50d", as: Int.self), 50)
        await fixture.stop()
    }

    func testAFreshInstallCanAskForAYearOfHistory() async throws {
        let today = CivilDate.today()
        let fixture = try await MarketFixture(symbols: ["AAPL", "KO"], from: today.adding(days: -400), through: today)
        try await fixture.seed(["AAPL", "KO"])
        let settings = MarketDataSettings(initialHistoryDays: 365)
        let result = try await fixture.run(OHLCDailyTask(client: fixture.client, settings: settings), args: #"{"days": 30}"#)
            .decode(Result.self)
        XCTAssertEqual(result.from, NewYorkTime.today().adding(days: -365).description)
        XCTAssertEqual(result.history_symbols, 2)
        // Not a fresh install any more: a symbol added now gets the usual 60 trading days.
        _ = try await fixture.connection.query("INSERT INTO ticker_universe (symbol) VALUES ('MSFT')")
        let later = try await fixture.run(OHLCDailyTask(client: fixture.client, settings: settings), args: #"{"days": 30}"#)
            .decode(Result.self)
        XCTAssertEqual(later.history_symbols, 1)
        XCTAssertGreaterThan(try XCTUnwrap(CivilDate(later.from)), NewYorkTime.today().adding(days: -120))
        await fixture.stop()
    }

    func testAPartialAverageIsMarkedWithItsBarCount() async throws {
        let fixture = try await MarketFixture(symbols: ["AAPL"])
        try await fixture.seed(["AAPL"])
        _ = try await fixture.run(OHLCDailyTask(client: fixture.client), args: #"{"from": "2025-03-03", "to": "2025-03-21"}"#)
        _ = try await fixture.run(VolumeStatsTask(), args: "{}")
        let row = try await fixture.connection.query("SELECT * FROM ticker_volume_stats WHERE symbol = 'AAPL'").first!
        XCTAssertEqual(try row.decode("bars_50d", as: Int.self), 15)
        XCTAssertEqual(try row.decode("bars_30d", as: Int.self), 15)
        XCTAssertEqual(try row.decode("bars_10d", as: Int.self), 10)
        XCTAssertEqual(row["complete_50d"], "f")
        XCTAssertEqual(row["complete_10d"], "t")
        XCTAssertNotNil(row["avg_volume_50d"])
        await fixture.stop()
    }

    func testBackfillMakesOneGroupedRequestPerTradingDay() async throws {
        let fixture = try await MarketFixture(symbols: ["AAPL", "MSFT", "KO"])
        try await fixture.seed(["AAPL", "MSFT"])
        // 2025-05-19 .. 2025-05-30: ten weekdays, Memorial Day (05-26) closed: nine trading days.
        let json = try await fixture.run(BackfillTask(client: fixture.client),
                                         args: #"{"from": "2025-05-19", "to": "2025-05-30", "symbols": ["AAPL", "KO"]}"#)
        let result = try json.decode(Result.self)
        XCTAssertEqual(result.requests, 9)
        XCTAssertEqual(fixture.server.requests.filter { $0.path.contains("/grouped/") }.count, 9)
        XCTAssertFalse(fixture.server.requests.contains { $0.path.hasSuffix("2025-05-26") })
        let rows = try await fixture.connection.query("SELECT symbol, count(*)::int AS n FROM market_data_daily GROUP BY symbol ORDER BY symbol")
        XCTAssertEqual(rows.map { "\($0["symbol"]!)=\($0["n"]!)" }, ["AAPL=9", "KO=9"])
        do {
            _ = try await fixture.run(BackfillTask(client: fixture.client), args: "{}")
            XCTFail("a backfill without a range must be refused")
        } catch let error as InvalidJobArguments {
            XCTAssertTrue("\(error)".contains("from"), "\(error)")
        }
        await fixture.stop()
    }
}
