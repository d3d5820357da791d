import Foundation
import Toolkit
import JobQueue
import Polygon
import PostgresClient
import SampleMarket
import TestSupport
import XCTest
@testable import MarketDataTasks

final class EarningsTests: XCTestCase {
    let universe = ["AAPL", "MSFT", "NVDA", "JPM", "ZAAA", "ZBAA"]

    struct Result: Decodable {
        var candidates: Int
        var rows_written: Int
        var requests: Int
        var skipped: Bool?
        var reason: String?
    }

    /// Data through today, so that "upcoming" means the same for the server and the database.
    private func fixture(options: SampleServerOptions = SampleServerOptions(apiKey: MarketFixture.apiKey)) async throws -> MarketFixture {
        let today = CivilDate.today()
        return try await MarketFixture(symbols: universe, from: today.adding(days: -200), through: today, options: options)
    }

    func testEarningsLoadsTheWindowOnlyForSymbolsWithoutAFutureDate() async throws {
        let fixture = try await fixture()
        try await fixture.seed(universe)
        // 120 days ahead: every sample symbol (quarterly reports) then has a future date, whatever today is.
        let ahead = #"{"days_ahead": 120}"#
        let first = try await fixture.run(EarningsTask(client: fixture.client), args: ahead).decode(Result.self)
        XCTAssertEqual(first.candidates, universe.count)
        XCTAssertEqual(first.requests, universe.count)

        // Every event of the window, exactly as served.
        let today = NewYorkTime.today()
        let from = today.adding(days: -100), to = today.adding(days: 120)
        var expected: [String] = []
        for symbol in universe.sorted() {
            for e in fixture.data.earnings(symbol: symbol) where e.date >= from.description && e.date <= to.description {
                let time = EarningsTimeOfDay(easternTime: e.time).rawValue
                expected.append([symbol, e.date, time, e.fiscalPeriod ?? "", e.fiscalYear.map(String.init) ?? "",
                                 e.dateStatus == "confirmed" ? "t" : "f", e.estimatedEPS.map { "\(exact($0))" } ?? "",
                                 e.actualEPS.map { "\(exact($0))" } ?? ""].joined(separator: "|"))
            }
        }
        let rows = try await fixture.connection.query("""
            SELECT concat_ws('|', symbol, date, time_of_day, coalesce(fiscal_period, ''), coalesce(fiscal_year::text, ''),
                             CASE WHEN confirmed THEN 't' ELSE 'f' END, coalesce(eps_estimate::text, ''), coalesce(eps_actual::text, '')) AS line
              FROM ticker_earnings ORDER BY symbol, date
            """)
        XCTAssertEqual(rows.map { $0["line"] ?? "" }, expected)
        XCTAssertEqual(first.rows_written, expected.count)
        XCTAssertTrue(expected.contains { $0.contains("before_open") } && expected.contains { $0.contains("after_close") })

        // upcoming_earnings(14) is "who reports in the next 14 days".
        let upcoming = try await fixture.connection.query("SELECT symbol, date::text AS date FROM upcoming_earnings(14)")
        let wanted = universe.flatMap { symbol in
            fixture.data.earnings(symbol: symbol).filter { $0.date >= today.description && $0.date <= today.adding(days: 14).description }
                .map { "\(symbol) \($0.date)" }
        }
        XCTAssertEqual(Set(upcoming.map { "\($0["symbol"]!) \($0["date"]!)" }), Set(wanted))

        // Symbols whose next date is known are not fetched again; a past date makes one due again.
        let withFuture = try await fixture.connection.query(
            "SELECT count(DISTINCT symbol)::int AS n FROM ticker_earnings WHERE date >= $1::date", [today.description]).first!.decode("n", as: Int.self)
        XCTAssertEqual(withFuture, universe.count)
        let second = try await fixture.run(EarningsTask(client: fixture.client), args: ahead).decode(Result.self)
        XCTAssertEqual(second.candidates, 0)
        XCTAssertEqual(second.requests, 0)
        _ = try await fixture.connection.query("DELETE FROM ticker_earnings WHERE symbol = 'MSFT' AND date >= $1::date", [today.description])
        let third = try await fixture.run(EarningsTask(client: fixture.client), args: ahead).decode(Result.self)
        XCTAssertEqual(third.candidates, 1)
        XCTAssertGreaterThan(third.rows_written, 0)

        // force refetches all; nothing changed, so nothing is rewritten.
        let forced = try await fixture.run(EarningsTask(client: fixture.client), args: #"{"force": true, "symbols": ["AAPL", "JPM"], "days_ahead": 120}"#)
            .decode(Result.self)
        XCTAssertEqual(forced.candidates, 2)
        XCTAssertEqual(forced.requests, 2)
        XCTAssertEqual(forced.rows_written, 0)
        await fixture.stop()
    }

    func testAPlanWithoutTheEndpointSkipsTheTaskWithoutRetries() async throws {
        let fixture = try await fixture(options: SampleServerOptions(apiKey: MarketFixture.apiKey, earningsEntitled: false))
        try await fixture.seed(universe)
        let result = try await fixture.run(EarningsTask(client: fixture.client), args: #"{"concurrency": 1}"#).decode(Result.self)
        XCTAssertEqual(result.skipped, true)
        XCTAssertTrue(result.reason?.contains("403") ?? false, result.reason ?? "")
        XCTAssertFalse(result.reason?.contains(MarketFixture.apiKey) ?? true)
        let earningsRequests = fixture.server.requests.filter { $0.path.hasPrefix("/benzinga/") }
        XCTAssertEqual(earningsRequests.count, 1)
        XCTAssertEqual(earningsRequests.first?.status, 403)
        let rows = try await fixture.connection.query("SELECT count(*)::int AS n FROM ticker_earnings").first!.decode("n", as: Int.self)
        XCTAssertEqual(rows, 0)
        await fixture.stop()
    }

    func testEarningsTimeOfDayClassification() {
        XCTAssertEqual(EarningsTimeOfDay(easternTime: "08:00:00"), .beforeOpen)
        XCTAssertEqual(EarningsTimeOfDay(easternTime: "09:29"), .beforeOpen)
        XCTAssertEqual(EarningsTimeOfDay(easternTime: "09:30:00"), .unknown)
        XCTAssertEqual(EarningsTimeOfDay(easternTime: "16:00:00"), .afterClose)
        XCTAssertEqual(EarningsTimeOfDay(easternTime: nil), .unknown)
        XCTAssertEqual(EarningsTimeOfDay(easternTime: "soon"), .unknown)
    }
}
