import Foundation
import Toolkit
import HTTPClient
import Polygon
import SampleMarket
import XCTest

final class SampleMarketTests: XCTestCase {
    let from = CivilDate("2024-03-04")!
    let through = CivilDate("2024-03-15")!

    func testUniverseAndTradingDays() {
        let data = SampleMarketData(symbols: 40, seed: 1, from: from, through: through)
        XCTAssertEqual(data.symbols.count, 40)
        XCTAssertEqual(Array(data.symbols.prefix(3)), ["AAPL", "MSFT", "AMZN"])
        XCTAssertEqual(data.symbols[12], "ZAAA")
        XCTAssertEqual(data.symbols[13], "ZAAB")
        XCTAssertEqual(Set(data.symbols).count, 40)
        XCTAssertEqual(data.tradingDays.count, 10)
        XCTAssertFalse(data.isTradingDay(CivilDate("2024-03-09")!))
        XCTAssertFalse(data.isTradingDay(CivilDate("2024-03-18")!), "after the range")
        XCTAssertNil(data.dailyBar(symbol: "AAPL", date: CivilDate("2024-03-09")!))
        XCTAssertNil(data.dailyBar(symbol: "NOPE", date: from))
        let custom = SampleMarketData(symbols: ["X", "Y", "X"], seed: 1, from: from, through: through)
        XCTAssertEqual(custom.symbols, ["X", "Y"])
    }

    func testDeterministicPerSeed() {
        let a = SampleMarketData(symbols: 20, seed: 5, from: from, through: through)
        let b = SampleMarketData(symbols: 20, seed: 5, from: from, through: through)
        let c = SampleMarketData(symbols: 20, seed: 6, from: from, through: through)
        XCTAssertEqual(a.dailyBar(symbol: "ZAAC", date: from), b.dailyBar(symbol: "ZAAC", date: from))
        XCTAssertEqual(a.minuteBars(symbol: "MSFT", date: from), b.minuteBars(symbol: "MSFT", date: from))
        XCTAssertEqual(a.details(symbol: "ZAAD"), b.details(symbol: "ZAAD"))
        XCTAssertNotEqual(a.dailyBar(symbol: "ZAAC", date: from), c.dailyBar(symbol: "ZAAC", date: from))
        // A bar does not depend on the range asked for.
        let wider = SampleMarketData(symbols: 20, seed: 5, from: CivilDate("2024-01-01")!, through: CivilDate("2024-06-28")!)
        XCTAssertEqual(wider.dailyBar(symbol: "ZAAC", date: from), a.dailyBar(symbol: "ZAAC", date: from))
    }

    func testDailyBarsAreConsistentAndSometimesOmitVWAndN() throws {
        let data = SampleMarketData(symbols: 60, seed: 3, from: CivilDate("2024-01-02")!, through: CivilDate("2024-03-29")!)
        var missingVW = 0, missingN = 0, total = 0
        for symbol in data.symbols {
            for day in data.tradingDays {
                let bar = try XCTUnwrap(data.dailyBar(symbol: symbol, date: day))
                total += 1
                XCTAssertTrue(bar.low <= min(bar.open, bar.close) && bar.high >= max(bar.open, bar.close), "\(symbol) \(day)")
                XCTAssertGreaterThan(bar.low, 0)
                XCTAssertGreaterThan(bar.volume, 0)
                XCTAssertEqual(bar.newYorkDate, day)
                XCTAssertEqual(bar.startDate, day.newYorkMidnight)
                if bar.vwap == nil { missingVW += 1 }
                if bar.transactions == nil { missingN += 1 }
            }
        }
        XCTAssertTrue(missingVW > 0 && missingVW < total / 4, "\(missingVW)/\(total)")
        XCTAssertTrue(missingN > 0 && missingN < total / 4, "\(missingN)/\(total)")
        // Grouped-daily bars: same values, stamped 16:00 New York.
        let day = CivilDate("2024-03-11")!
        let grouped = data.groupedDaily(date: day)
        XCTAssertEqual(grouped.count, 60)
        for entry in grouped {
            var expected = try XCTUnwrap(data.dailyBar(symbol: entry.ticker, date: day))
            expected.timestamp = entry.bar.timestamp
            XCTAssertEqual(entry.bar, expected)
            XCTAssertEqual(entry.bar.startDate, day.newYorkTime(hour: 16))
            XCTAssertEqual(entry.bar.newYorkDate, day)
        }
        XCTAssertEqual(data.groupedDaily(date: CivilDate("2024-03-10")!), [])
    }

    func testMinuteBarsSpanExtendedHoursWithGapsAndUShapedVolume() throws {
        let data = SampleMarketData(symbols: 5, seed: 11, from: from, through: through)
        for day in [CivilDate("2024-03-08")!, CivilDate("2024-03-11")!] {  // either side of the DST switch
            let bars = data.minuteBars(symbol: "AAPL", date: day)
            let open = day.newYorkTime(hour: 4).timeIntervalSince1970 * 1000
            let close = day.newYorkTime(hour: 20).timeIntervalSince1970 * 1000
            XCTAssertTrue(bars.allSatisfy { Double($0.timestamp) >= open && Double($0.timestamp) < close })
            XCTAssertTrue(bars.allSatisfy { $0.timestamp % 60_000 == 0 && $0.newYorkDate == day })
            XCTAssertEqual(bars.map(\.timestamp), bars.map(\.timestamp).sorted())
            XCTAssertLessThan(bars.count, 960, "some minutes have no bar")
            let minuteOf: (PolygonBar) -> Int = { Int((Double($0.timestamp) - open) / 60_000) }
            let regular = bars.filter { (330..<720).contains(minuteOf($0)) }
            let extended = bars.filter { !(330..<720).contains(minuteOf($0)) }
            XCTAssertGreaterThan(regular.count, 350)
            XCTAssertGreaterThan(extended.count, 50)
            XCTAssertLessThan(extended.count, 300)
            func average(_ range: Range<Int>) -> Double {
                let chosen = bars.filter { range.contains(minuteOf($0)) }
                return chosen.map(\.volume).reduce(0, +) / Double(chosen.count)
            }
            let first30 = average(330..<360), midday = average(480..<570), last30 = average(690..<720)
            XCTAssertGreaterThan(first30, 2 * midday)
            XCTAssertGreaterThan(last30, 2 * midday)
            XCTAssertGreaterThan(midday, average(0..<330), "pre-market is thin")
        }
        XCTAssertEqual(data.minuteBars(symbol: "AAPL", date: CivilDate("2024-03-09")!), [])
    }

    func testDetailsShapes() throws {
        let data = SampleMarketData(symbols: 300, seed: 2, from: from, through: through)
        let apple = try XCTUnwrap(data.details(symbol: "AAPL"))
        XCTAssertEqual(apple.name, "Apple Inc.")
        XCTAssertEqual(apple.sicCode, "3571")
        XCTAssertEqual(apple.sicDescription, "ELECTRONIC COMPUTERS")
        XCTAssertEqual(apple.primaryExchange, "XNAS")
        XCTAssertNotNil(apple.marketCap)
        let all = data.symbols.compactMap { data.details(symbol: $0) }
        XCTAssertEqual(all.count, 300)
        XCTAssertTrue(all.contains { $0.sicCode == nil }, "some symbols lack a sector")
        XCTAssertTrue(all.contains { $0.shareClassSharesOutstanding == nil && $0.weightedSharesOutstanding != nil })
        XCTAssertTrue(all.contains { $0.shareClassSharesOutstanding != nil && $0.weightedSharesOutstanding == nil })
        XCTAssertTrue(all.contains { $0.marketCap == nil })
        XCTAssertTrue(all.allSatisfy { $0.sharesOutstanding != nil })
        for details in all {
            if let code = details.sicCode { XCTAssertEqual(details.sicDescription, SampleMarketData.sicTable[code]) }
            XCTAssertTrue(["XNAS", "XNYS"].contains(details.primaryExchange ?? ""))
        }
        XCTAssertNil(data.details(symbol: "NOPE"))
    }

    func testServedJSONHasPolygonShapes() async throws {
        let data = SampleMarketData(symbols: 60, seed: 3, from: CivilDate("2024-01-02")!, through: CivilDate("2024-03-29")!)
        let server = try SamplePolygonServer.start(data: data)
        defer { server.stop() }
        let http = HTTPClient()
        // Find a bar without vw and check the served JSON leaves the field out.
        let (symbol, day) = try XCTUnwrap(data.symbols.lazy.flatMap { s in data.tradingDays.map { (s, $0) } }
            .first { data.dailyBar(symbol: $0.0, date: $0.1)?.vwap == nil })
        let url = URL(string: "\(server.baseURL)/v2/aggs/ticker/\(symbol)/range/1/day/\(day)/\(day)?adjusted=true")!
        let response = try await http.send(HTTPRequest(url: url))
        XCTAssertEqual(response.status, 200)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: response.body) as? [String: Any])
        XCTAssertEqual(object["status"] as? String, "OK")
        XCTAssertEqual(object["ticker"] as? String, symbol)
        let results = try XCTUnwrap(object["results"] as? [[String: Any]])
        XCTAssertEqual(results.count, 1)
        XCTAssertNil(results[0]["vw"])
        XCTAssertEqual(Set(results[0].keys).isSuperset(of: ["o", "h", "l", "c", "v", "t"]), true)
        // A weekend grouped-daily answer has no results key at all.
        let weekend = try await http.send(HTTPRequest(url: URL(string: "\(server.baseURL)/v2/aggs/grouped/locale/us/market/stocks/2024-03-09?adjusted=true")!))
        let weekendObject = try XCTUnwrap(JSONSerialization.jsonObject(with: weekend.body) as? [String: Any])
        XCTAssertNil(weekendObject["results"])
        XCTAssertEqual(weekendObject["resultsCount"] as? Int, 0)
        // Unknown routes and bad dates are JSON errors, not crashes.
        let unknown = try await http.send(HTTPRequest(url: URL(string: "\(server.baseURL)/v9/nothing")!))
        XCTAssertEqual(unknown.status, 404)
        let badDate = try await http.send(HTTPRequest(url: URL(string: "\(server.baseURL)/v2/aggs/grouped/locale/us/market/stocks/yesterday")!))
        XCTAssertEqual(badDate.status, 400)
    }

    func testNYSEHolidayRules() {
        let holidays2024 = ["2024-01-01", "2024-01-15", "2024-02-19", "2024-03-29", "2024-05-27", "2024-06-19",
                            "2024-07-04", "2024-09-02", "2024-11-28", "2024-12-25"]
        let year = CivilDate.range(from: CivilDate("2024-01-01")!, through: CivilDate("2024-12-31")!)
        XCTAssertEqual(year.filter { $0.nyseHoliday != nil }.map(\.description), holidays2024)
        XCTAssertEqual(year.filter(\.isNYSETradingDay).count, 252)
        XCTAssertEqual(CivilDate("2026-11-26")!.nyseHoliday, "Thanksgiving Day")
        XCTAssertEqual(CivilDate("2026-07-03")!.nyseHoliday, "Independence Day", "Saturday holiday observed Friday")
        XCTAssertEqual(CivilDate("2022-12-26")!.nyseHoliday, "Christmas Day", "Sunday holiday observed Monday")
        XCTAssertEqual(CivilDate("2023-01-02")!.nyseHoliday, "New Year's Day")
        XCTAssertNil(CivilDate("2021-12-31")!.nyseHoliday, "New Year's Day on a Saturday is not observed")
        XCTAssertNil(CivilDate("2021-06-18")!.nyseHoliday, "Juneteenth only from 2022")
        XCTAssertFalse(CivilDate("2024-03-09")!.isNYSETradingDay)
        XCTAssertTrue(CivilDate("2024-11-29")!.isNYSETradingDay, "the day after Thanksgiving trades (half day)")
    }

    func testSampleServerServesNoBarsOnHolidays() async throws {
        let thanksgiving = CivilDate("2024-11-28")!
        let data = SampleMarketData(symbols: 5, seed: 2, from: CivilDate("2024-11-25")!, through: CivilDate("2024-11-29")!)
        XCTAssertEqual(data.tradingDays.map(\.description), ["2024-11-25", "2024-11-26", "2024-11-27", "2024-11-29"])
        XCTAssertFalse(data.isTradingDay(thanksgiving))
        XCTAssertNil(data.dailyBar(symbol: "AAPL", date: thanksgiving))
        XCTAssertEqual(data.minuteBars(symbol: "AAPL", date: thanksgiving), [])
        let server = try SamplePolygonServer.start(data: data)
        defer { server.stop() }
        let http = HTTPClient()
        let grouped = try await http.send(HTTPRequest(url: URL(string: "\(server.baseURL)/v2/aggs/grouped/locale/us/market/stocks/2024-11-28?adjusted=true")!))
        let groupedObject = try XCTUnwrap(JSONSerialization.jsonObject(with: grouped.body) as? [String: Any])
        XCTAssertEqual(groupedObject["status"] as? String, "OK")
        XCTAssertEqual(groupedObject["resultsCount"] as? Int, 0)
        XCTAssertNil(groupedObject["results"])
        let client = PolygonClient(configuration: server.clientConfiguration())
        let daily = try await client.dailyBars(symbol: "AAPL", from: data.firstDate, to: data.lastDate)
        XCTAssertEqual(daily.map { CivilDate(newYorkDateOfMilliseconds: $0.timestamp).description },
                       ["2024-11-25", "2024-11-26", "2024-11-27", "2024-11-29"])
        let minutes = try await client.aggregates(symbol: "AAPL", multiplier: 1, timespan: .minute, from: thanksgiving, to: thanksgiving)
        XCTAssertEqual(minutes, [])
    }

    func testClientAgainstSampleServerEndToEnd() async throws {
        let data = SampleMarketData(symbols: 25, seed: 9, from: from, through: through)
        let server = try SamplePolygonServer.start(data: data, options: SampleServerOptions(apiKey: "k"))
        defer { server.stop() }
        let configuration = server.clientConfiguration()
        XCTAssertEqual(configuration.apiKey, "k")
        let client = PolygonClient(configuration: configuration)
        let day = CivilDate("2024-03-12")!
        let grouped = try await client.groupedDaily(date: day)
        XCTAssertEqual(grouped, data.groupedDaily(date: day))
        let daily = try await client.dailyBars(symbol: "NVDA", from: from, to: through)
        XCTAssertEqual(daily, data.dailyBars(symbol: "NVDA", from: from, through: through))
        XCTAssertEqual(daily.count, 10)
        let fiveMinute = try await client.aggregates(symbol: "NVDA", multiplier: 5, timespan: .minute, from: day, to: day)
        let minutes = data.minuteBars(symbol: "NVDA", date: day)
        XCTAssertEqual(fiveMinute.map(\.volume).reduce(0, +), minutes.map(\.volume).reduce(0, +))
        XCTAssertTrue(fiveMinute.allSatisfy { $0.timestamp % 300_000 == 0 })
        let details = try await client.tickerDetails(symbol: "ZAAB")
        XCTAssertEqual(details, data.details(symbol: "ZAAB"))
        let holidays = try await client.upcomingMarketStatus()
        XCTAssertEqual(holidays, data.upcomingHolidays)
        XCTAssertTrue(holidays.allSatisfy { $0.date > through })
        XCTAssertEqual(server.requestCount, client.requestCount)
    }

    func testFaultRulesCountAndMatchPaths() async throws {
        let data = SampleMarketData(symbols: 5, seed: 9, from: from, through: through)
        let server = try SamplePolygonServer.start(data: data)
        defer { server.stop() }
        server.inject(.serverError(status: 503), pathContains: "/grouped/", times: 1)
        let http = HTTPClient()
        let url = URL(string: "\(server.baseURL)/v2/aggs/grouped/locale/us/market/stocks/2024-03-12")!
        let first = try await http.send(HTTPRequest(url: url))
        let second = try await http.send(HTTPRequest(url: url))
        XCTAssertEqual([first.status, second.status], [503, 200])
        XCTAssertEqual(server.requests.map(\.status), [503, 200])
        server.resetRecords()
        XCTAssertEqual(server.requestCount, 0)
    }
}

final class CivilDateAndConfigurationTests: XCTestCase {
    func testCivilDateParsingAndArithmetic() {
        XCTAssertNil(CivilDate("2024-02-30"))
        XCTAssertNil(CivilDate("2024-2-3"))
        XCTAssertNil(CivilDate("yesterday"))
        let leap = CivilDate("2024-02-29")!
        XCTAssertEqual(leap.adding(days: 1), CivilDate("2024-03-01"))
        XCTAssertEqual(leap.adding(days: -366), CivilDate("2023-02-28"))
        XCTAssertEqual(CivilDate(dayNumber: 0).description, "1970-01-01")
        XCTAssertEqual(CivilDate("2000-03-01")!.dayNumber, 11017)
        XCTAssertEqual(CivilDate("2024-03-11")!.isoWeekday, 1)
        XCTAssertEqual(CivilDate("2024-03-10")!.isoWeekday, 7)
        XCTAssertFalse(CivilDate("2024-03-09")!.isWeekday)
        XCTAssertEqual(CivilDate.range(from: leap, through: CivilDate("2024-03-02")!).count, 3)
        XCTAssertEqual(CivilDate("2024-01-31")!.days(to: CivilDate("2024-03-01")!), 30)
        for days in stride(from: -800_000, through: 800_000, by: 9_973) {
            XCTAssertEqual(CivilDate(dayNumber: days).dayNumber, days)
        }
    }

    func testNewYorkDatesFollowDaylightSaving() {
        // 2024-03-10 02:00 EST → 03:00 EDT; 2024-11-03 02:00 EDT → 01:00 EST.
        XCTAssertEqual(CivilDate("2024-03-08")!.newYorkTime(hour: 4).timeIntervalSince1970, 1_709_888_400)  // 09:00Z
        XCTAssertEqual(CivilDate("2024-03-11")!.newYorkTime(hour: 4).timeIntervalSince1970, 1_710_144_000)  // 08:00Z
        XCTAssertEqual(CivilDate("2024-11-04")!.newYorkMidnight.timeIntervalSince1970, 1_730_696_400)  // 05:00Z
        XCTAssertEqual(CivilDate(newYorkDateOfMilliseconds: 1_730_696_399_000), CivilDate("2024-11-03"))
        XCTAssertEqual(CivilDate(newYorkDateOfMilliseconds: 1_730_696_400_000), CivilDate("2024-11-04"))
        let decoded = try? JSONDecoder().decode([CivilDate].self, from: Data(#"["2024-07-04"]"#.utf8))
        XCTAssertEqual(decoded, [CivilDate("2024-07-04")!])
        XCTAssertThrowsError(try JSONDecoder().decode([CivilDate].self, from: Data(#"["07/04/2024"]"#.utf8)))
    }

    func testConfigurationFromEnvironment() throws {
        let defaults = try PolygonConfiguration.fromEnvironment([:])
        XCTAssertNil(defaults.apiKey)
        XCTAssertEqual(defaults.baseURL, URL(string: "https://api.polygon.io")!)
        XCTAssertEqual(defaults.requestsPerSecond, 20)
        XCTAssertEqual(defaults.maxConcurrentRequests, 8)
        XCTAssertEqual(defaults.retry, PolygonRetryPolicy(maxAttempts: 5, baseDelay: 0.5, maxDelay: 30, maxRetryAfter: 60))
        XCTAssertEqual(try PolygonConfiguration.fromEnvironment(["POLYGON_API_KEY": "p", "MASSIVE_API_KEY": "m"]).apiKey, "p")
        XCTAssertEqual(try PolygonConfiguration.fromEnvironment(["MASSIVE_API_KEY": "m"]).apiKey, "m")
        XCTAssertEqual(try PolygonConfiguration.fromEnvironment(["POLYGON_API_KEY": " ", "MASSIVE_API_KEY": "m"]).apiKey, "m")
        let custom = try PolygonConfiguration.fromEnvironment(["POLYGON_BASE_URL": "http://127.0.0.1:8089/proxy/"])
        XCTAssertEqual(custom.baseURL.absoluteString, "http://127.0.0.1:8089/proxy/")
        XCTAssertThrowsError(try PolygonConfiguration.fromEnvironment(["POLYGON_BASE_URL": "api.polygon.io"])) { error in
            XCTAssertEqual(error as? PolygonConfigurationError, .invalidBaseURL(variable: "POLYGON_BASE_URL", value: "api.polygon.io"))
        }
        XCTAssertThrowsError(try PolygonConfiguration.fromEnvironment(["POLYGON_BASE_URL": "https://x.io/?apiKey=SECRET"])) { error in
            XCTAssertFalse("\(error)".contains("SECRET"))
        }
        let policy = PolygonRetryPolicy(maxAttempts: 10, baseDelay: 1, maxDelay: 5)
        XCTAssertEqual((1...5).map(policy.backoff(retry:)), [1, 2, 4, 5, 5])
    }

    func testBaseURLPathPrefixIsKept() async throws {
        let data = SampleMarketData(symbols: 3, seed: 1, from: CivilDate("2024-03-04")!, through: CivilDate("2024-03-08")!)
        let server = try SamplePolygonServer.start(data: data)
        defer { server.stop() }
        // The sample server does not know the prefix, so the request must fail with 404 at /proxy/...
        let client = PolygonClient(configuration: PolygonConfiguration(baseURL: URL(string: "\(server.baseURL)/proxy/")!, requestsPerSecond: 0))
        do {
            _ = try await client.tickerDetails(symbol: "AAPL")
            XCTFail("expected notFound")
        } catch let error as PolygonError {
            guard case .notFound = error else { return XCTFail("got \(error)") }
        }
        XCTAssertEqual(server.requests.map(\.path), ["/proxy/v3/reference/tickers/AAPL"])
    }
}
