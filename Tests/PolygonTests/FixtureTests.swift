import Foundation
import Toolkit
import HTTPServer
import Polygon
import XCTest

/// The recorded Polygon responses in `<repo>/../shared/fixtures/polygon`.
enum Fixtures {
    static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // PolygonTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // repository root
        .deletingLastPathComponent()  // its parent, which holds shared/
        .appendingPathComponent("shared/fixtures/polygon")

    static func data(_ relative: String) throws -> Data {
        try Data(contentsOf: root.appendingPathComponent(relative))
    }

    static func allJSONFiles() -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: root.path)
        var files: [String] = []
        while let next = enumerator?.nextObject() as? String {
            if next.hasSuffix(".json") { files.append(next) }
        }
        return files.sorted()
    }
}

/// Serves the fixture files as the API would: `/a/b?q` answers `a/b&q.json`, else `a/b.json`.
final class FixtureServer: Sendable {
    let server: HTTPServer
    private let seen = FixtureLocked<[(target: String, authorization: String?)]>([])

    init() throws {
        let seen = self.seen
        server = try HTTPServer.start { request in
            seen.withLock { $0.append((request.target, request.header("authorization"))) }
            let path = String(request.path.dropFirst())
            var candidates: [String] = []
            if let query = request.rawQuery { candidates.append("\(path)&\(query).json") }
            candidates.append("\(path).json")
            for candidate in candidates {
                if let body = try? Fixtures.data(candidate) { return .json(body) }
            }
            return .json(Data(#"{"status":"NOT_FOUND","request_id":"x","message":"no fixture"}"#.utf8), status: 404)
        }
    }

    var targets: [String] { seen.withLock { $0.map(\.target) } }
    var authorizations: [String?] { seen.withLock { $0.map(\.authorization) } }

    func client(key: String = "fixture-key-123") -> PolygonClient {
        PolygonClient(configuration: PolygonConfiguration(baseURL: server.baseURL, apiKey: key, requestsPerSecond: 0))
    }

    deinit { server.stop() }
}

final class FixtureLocked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<T>(_ body: (inout Value) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

final class FixtureTests: XCTestCase {
    private func date(_ text: String) -> CivilDate { CivilDate(text)! }

    func testEveryFixtureDecodesWithItsModel() throws {
        let files = Fixtures.allJSONFiles()
        XCTAssertEqual(files.count, 7, "fixtures: \(files)")
        let decoder = JSONDecoder()
        for file in files {
            let body = try Fixtures.data(file)
            if file.hasPrefix("v2/aggs/grouped/") {
                let page = try decoder.decode(PolygonAggregatesPage<PolygonGroupedBar>.self, from: body)
                XCTAssertFalse(page.results?.isEmpty ?? true, file)
            } else if file.hasPrefix("v2/aggs/ticker/") {
                let page = try decoder.decode(PolygonAggregatesPage<PolygonBar>.self, from: body)
                XCTAssertFalse(page.results?.isEmpty ?? true, file)
            } else if file.hasPrefix("v3/reference/tickers/") {
                let details = try decoder.decode(DetailsEnvelope.self, from: body)
                XCTAssertEqual(details.results.ticker, "AAPL", file)
            } else if file.hasPrefix("v3/reference/tickers") {
                let page = try decoder.decode(PolygonTickerListPage.self, from: body)
                XCTAssertEqual(page.results?.count, 2, file)
            } else if file == "v1/marketstatus/upcoming.json" {
                XCTAssertEqual(try decoder.decode([PolygonMarketHoliday].self, from: body).count, 14)
            } else {
                XCTFail("fixture without a decoding test: \(file)")
            }
        }
    }

    private struct DetailsEnvelope: Decodable { var results: PolygonTickerDetails }

    func testDailyAggregatesAcrossDSTSwitchMapToNewYorkDates() async throws {
        let fixtures = try FixtureServer()
        let client = fixtures.client()
        let bars = try await client.dailyBars(symbol: "AAPL", from: date("2005-04-01"), to: date("2005-04-04"))
        XCTAssertEqual(bars.count, 2)
        XCTAssertEqual(bars[0].open, 1.5032)
        XCTAssertEqual(bars[0].high, 1.5064)
        XCTAssertEqual(bars[0].low, 1.4489)
        XCTAssertEqual(bars[0].close, 1.4604)
        XCTAssertEqual(bars[0].volume, 642_646_396)
        XCTAssertEqual(bars[0].vwap, 1.469)
        XCTAssertEqual(bars[0].transactions, 82132)
        XCTAssertEqual(bars[1].close, 1.4675)
        // 2005-04-01 05:00Z is midnight EST; 2005-04-04 04:00Z is midnight EDT (DST began 2005-04-03).
        XCTAssertEqual(bars[0].timestamp, 1_112_331_600_000)
        XCTAssertEqual(bars[1].timestamp, 1_112_587_200_000)
        XCTAssertEqual(bars.map(\.newYorkDate), [date("2005-04-01"), date("2005-04-04")])
        XCTAssertEqual(bars[0].startDate, date("2005-04-01").newYorkMidnight)
        XCTAssertEqual(bars[1].startDate, date("2005-04-04").newYorkMidnight)
        // A fixed -5h offset would put the second bar on the 3rd at 23:00.
        XCTAssertEqual(CivilDate(newYorkDateOf: bars[1].startDate.addingTimeInterval(-3600)), date("2005-04-03"))
        XCTAssertEqual(fixtures.targets, ["/v2/aggs/ticker/AAPL/range/1/day/2005-04-01/2005-04-04?adjusted=true&sort=asc&limit=50000"])
        XCTAssertEqual(fixtures.authorizations, ["Bearer fixture-key-123"])
    }

    func testGroupedDailyTickersAndSixteenHundredTimestamp() async throws {
        let fixtures = try FixtureServer()
        let bars = try await fixtures.client().groupedDaily(date: date("2005-04-04"))
        XCTAssertEqual(bars.map(\.ticker), ["GIK"])
        let bar = try XCTUnwrap(bars.first).bar
        XCTAssertEqual(bar.close, 10.02)
        XCTAssertEqual(bar.open, 9.99)
        XCTAssertEqual(bar.volume, 895_345)
        XCTAssertEqual(bar.vwap, 9.9979)
        XCTAssertEqual(bar.transactions, 96)
        // 1602705600000 = 2020-10-14T20:00Z = 16:00 EDT: the session date is the 14th.
        XCTAssertEqual(bar.newYorkDate, date("2020-10-14"))
        XCTAssertEqual(bar.startDate, date("2020-10-14").newYorkTime(hour: 16))
        XCTAssertEqual(fixtures.targets, ["/v2/aggs/grouped/locale/us/market/stocks/2005-04-04?adjusted=true"])
    }

    func testTickerDetails() async throws {
        let fixtures = try FixtureServer()
        let client = fixtures.client()
        let details = try await client.tickerDetails(symbol: "AAPL")
        XCTAssertEqual(details.ticker, "AAPL")
        XCTAssertEqual(details.name, "Apple Inc.")
        XCTAssertEqual(details.marketCap, 2_488_795_282_370)
        XCTAssertEqual(details.shareClassSharesOutstanding, 16_319_440_000)
        XCTAssertEqual(details.weightedSharesOutstanding, 16_185_181_000)
        XCTAssertEqual(details.sharesOutstanding, 16_319_440_000)
        XCTAssertEqual(details.sicCode, "3571")
        XCTAssertEqual(details.sicDescription, "ELECTRONIC COMPUTERS")
        XCTAssertEqual(details.primaryExchange, "XNAS")
        XCTAssertEqual(details.active, true)
        XCTAssertEqual(details.totalEmployees, 154_000)
        XCTAssertEqual(details.listDate, "1980-12-12")
        let dated = try await client.tickerDetails(symbol: "AAPL", date: date("2020-10-01"))
        XCTAssertEqual(dated.marketCap, 1_916_103_105_630)
        XCTAssertEqual(fixtures.targets, ["/v3/reference/tickers/AAPL", "/v3/reference/tickers/AAPL?date=2020-10-01"])
    }

    func testTickerListFollowsNextURLOntoTheConfiguredHost() async throws {
        let fixtures = try FixtureServer()
        let client = fixtures.client()
        let tickers = try await client.tickers()
        XCTAssertEqual(tickers.map(\.ticker), ["A", "AA", "AAA", "AAAU"])
        XCTAssertEqual(tickers[0].name, "Agilent Technologies Inc.")
        XCTAssertEqual(tickers[2].type, "ETF")
        XCTAssertEqual(tickers[3].primaryExchange, "BATS")
        XCTAssertNil(tickers[2].cik)
        // Page 1's next_url names api.massive.com; it was followed on the configured host with its cursor.
        let targets = fixtures.targets
        XCTAssertEqual(targets.count, 2)
        XCTAssertEqual(targets[0], "/v3/reference/tickers?market=stocks&type=CS&active=true&limit=1000")
        XCTAssertTrue(targets[1].hasPrefix("/v3/reference/tickers?cursor=YWN0aXZlPXRydWUm"), targets[1])
        XCTAssertEqual(fixtures.authorizations, ["Bearer fixture-key-123", "Bearer fixture-key-123"])
        XCTAssertEqual(client.requestCount, 2)
        XCTAssertEqual(client.limiter.permitsGranted, 2, "the next_url page counts against the rate limit")
    }

    func testUpcomingMarketStatus() async throws {
        let fixtures = try FixtureServer()
        let holidays = try await fixtures.client().upcomingMarketStatus()
        XCTAssertEqual(holidays.count, 14)
        XCTAssertEqual(holidays[0], PolygonMarketHoliday(exchange: "NYSE", name: "Memorial Day", date: date("2022-05-30"), status: "closed"))
        XCTAssertTrue(holidays[0].isClosed)
        let early = holidays.filter { $0.status == "early-close" }
        XCTAssertEqual(early.map(\.date), [date("2022-11-25"), date("2022-11-25")])
        XCTAssertEqual(early[0].close, "2022-11-25T18:00:00.000Z")
        XCTAssertEqual(Set(holidays.map(\.exchange)), ["NYSE", "NASDAQ"])
    }
}
