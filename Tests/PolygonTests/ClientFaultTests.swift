import Foundation
import Toolkit
import HTTPClient
import HTTPServer
import Polygon
import SampleMarket
import XCTest

/// Collects retry events from a client's observer.
final class RetryLog: Sendable {
    private let events = FixtureLocked<[PolygonRetryEvent]>([])
    func record(_ event: PolygonRetryEvent) { events.withLock { $0.append(event) } }
    var all: [PolygonRetryEvent] { events.withLock { $0 } }
}

final class ClientFaultTests: XCTestCase {
    static let key = "sk-TEST-9f8e7d6c5b4a"
    let data = SampleMarketData(symbols: 30, seed: 7, from: CivilDate("2024-03-04")!, through: CivilDate("2024-03-15")!)

    private func start(latency: TimeInterval = 0) throws -> SamplePolygonServer {
        try SamplePolygonServer.start(data: data, options: SampleServerOptions(apiKey: ClientFaultTests.key, latency: latency))
    }

    private func client(_ server: SamplePolygonServer, key: String? = ClientFaultTests.key, attempts: Int = 4,
                        timeout: TimeInterval = 10, maxConcurrent: Int = 4, log: RetryLog? = nil,
                        limiter: PolygonRateLimiter? = nil, adjust: (inout PolygonConfiguration) -> Void = { _ in }) -> PolygonClient {
        var configuration = PolygonConfiguration(
            baseURL: server.baseURL, apiKey: key, requestsPerSecond: 0, maxConcurrentRequests: maxConcurrent,
            retry: PolygonRetryPolicy(maxAttempts: attempts, baseDelay: 0.001, maxDelay: 0.004, maxRetryAfter: 0.02),
            connectTimeout: 2, requestTimeout: timeout)
        adjust(&configuration)
        var observer: (@Sendable (PolygonRetryEvent) -> Void)?
        if let log { observer = { event in log.record(event) } }
        return PolygonClient(configuration: configuration, limiter: limiter, onRetry: observer)
    }

    private func expectError(_ body: () async throws -> Void, file: StaticString = #filePath, line: UInt = #line) async -> PolygonError? {
        do {
            try await body()
            XCTFail("expected a PolygonError", file: file, line: line)
            return nil
        } catch let error as PolygonError {
            XCTAssertFalse(error.description.contains(ClientFaultTests.key), "key leaked: \(error)", file: file, line: line)
            XCTAssertFalse(String(reflecting: error).contains(ClientFaultTests.key), file: file, line: line)
            return error
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
            return nil
        }
    }

    private func assertKeyNeverInURL(_ server: SamplePolygonServer, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(server.requests.isEmpty, file: file, line: line)
        for request in server.requests {
            XCTAssertFalse(request.target.contains(ClientFaultTests.key), "key in URL \(request.target)", file: file, line: line)
            XCTAssertFalse(request.target.lowercased().contains("apikey"), request.target, file: file, line: line)
        }
    }

    // MARK: - Retries

    func testRateLimitedWithRetryAfterIsRetriedThenSucceeds() async throws {
        let server = try start()
        defer { server.stop() }
        server.inject(.rateLimited(retryAfter: 1), symbol: "AAPL", times: 2)
        let log = RetryLog()
        let client = client(server, log: log)
        let details = try await client.tickerDetails(symbol: "AAPL")
        XCTAssertEqual(details, data.details(symbol: "AAPL"))
        XCTAssertEqual(server.requests.map(\.status), [429, 429, 200])
        XCTAssertEqual(log.all.map(\.status), [429, 429])
        XCTAssertEqual(log.all.map(\.retryAfter), [1, 1], "Retry-After was read")
        XCTAssertEqual(log.all.map(\.delay), [0.02, 0.02], "Retry-After replaces the backoff (capped by maxRetryAfter)")
        XCTAssertEqual(log.all.map(\.context), Array(repeating: PolygonRequestContext(endpoint: .tickerDetails, symbol: "AAPL"), count: 2))
        XCTAssertEqual(client.requestCount, 3)
        XCTAssertEqual(client.statistics.retries, 2)
        XCTAssertEqual(client.statistics.rateLimitedResponses, 2)
        assertKeyNeverInURL(server)
    }

    func testServerErrorIsRetriedWithBackoffThenSucceeds() async throws {
        let server = try start()
        defer { server.stop() }
        server.inject(.serverError(status: 500), symbol: "MSFT", times: 2)
        let log = RetryLog()
        let client = client(server, log: log)
        let from = CivilDate("2024-03-04")!, to = CivilDate("2024-03-08")!
        let bars = try await client.dailyBars(symbol: "MSFT", from: from, to: to)
        XCTAssertEqual(bars, data.dailyBars(symbol: "MSFT", from: from, through: to))
        XCTAssertEqual(bars.count, 5)
        XCTAssertEqual(server.requests.map(\.status), [500, 500, 200])
        XCTAssertEqual(log.all.map(\.attempt), [1, 2])
        XCTAssertEqual(log.all.map(\.retryAfter), [nil, nil])
        for event in log.all {
            // Exponential backoff with jitter: within [backoff/2, backoff] of the policy.
            let ceiling = client.configuration.retry.backoff(retry: event.attempt)
            XCTAssertTrue(event.delay >= ceiling / 2 && event.delay <= ceiling, "\(event.delay) vs \(ceiling)")
        }
        XCTAssertEqual(client.statistics.serverErrorResponses, 2)
    }

    func testDroppedConnectionIsRetriedThenSucceeds() async throws {
        let server = try start()
        defer { server.stop() }
        server.inject(.dropConnection, symbol: "GOOGL", times: 1)
        let log = RetryLog()
        let client = client(server, log: log)
        let details = try await client.tickerDetails(symbol: "GOOGL")
        XCTAssertEqual(details.sicCode, "7370")
        XCTAssertEqual(server.requests.map(\.status), [0, 200])
        XCTAssertEqual(log.all.count, 1)
        XCTAssertNil(log.all.first?.status, "a transport failure has no status")
        XCTAssertEqual(client.statistics.transportFailures, 1)
        server.inject(.dropConnection, symbol: "META")
        let error = await expectError { _ = try await client.tickerDetails(symbol: "META") }
        guard case .transport(let context, let underlying, 4)? = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertEqual(context.symbol, "META")
        XCTAssertEqual(underlying.curlCode, 52, "empty reply from server")
    }

    func testExhaustedRetriesGiveTypedErrorWithStatus() async throws {
        let server = try start()
        defer { server.stop() }
        server.inject(.serverError(status: 503), symbol: "NVDA")
        server.inject(.rateLimited(retryAfter: nil), symbol: "TSLA")
        let client = client(server, attempts: 3)
        let error = await expectError { _ = try await client.tickerDetails(symbol: "NVDA") }
        XCTAssertEqual(error, .httpStatus(PolygonRequestContext(endpoint: .tickerDetails, symbol: "NVDA"), status: 503, attempts: 3,
                                          message: "Internal server error"))
        XCTAssertEqual(error?.status, 503)
        XCTAssertEqual(server.requests.filter { $0.path.hasSuffix("/NVDA") }.count, 3)
        let limited = await expectError { _ = try await client.minuteBars(symbol: "TSLA", from: CivilDate("2024-03-04")!, to: CivilDate("2024-03-04")!) }
        guard case .httpStatus(let context, 429, 3, _)? = limited else { return XCTFail("got \(String(describing: limited))") }
        XCTAssertEqual(context.symbol, "TSLA")
        XCTAssertEqual(context.endpoint, .aggregates)
        XCTAssertEqual(context.date, "2024-03-04..2024-03-04")
        XCTAssertTrue(limited!.description.contains("aggregates TSLA 2024-03-04..2024-03-04"), limited!.description)
        XCTAssertEqual(client.statistics.failedCalls, 2)
    }

    func testOtherClientErrorsAreNotRetried() async throws {
        let server = try start()
        defer { server.stop() }
        let client = client(server)
        // The sample server answers 400 for a week timespan.
        let error = await expectError { _ = try await client.aggregates(symbol: "AAPL", timespan: .week, from: CivilDate("2024-03-04")!, to: CivilDate("2024-03-08")!) }
        guard case .httpStatus(_, 400, 1, let message)? = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertFalse(message.isEmpty)
        XCTAssertEqual(server.requestCount, 1)
    }

    // MARK: - Malformed answers

    func testHTMLWithStatus200IsMalformedNamingEndpointAndSymbol() async throws {
        let server = try start()
        defer { server.stop() }
        server.inject(.htmlBody, symbol: "AAPL")
        let client = client(server)
        let error = await expectError { _ = try await client.tickerDetails(symbol: "AAPL") }
        guard case .malformedResponse(let context, 200, let reason)? = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertEqual(context, PolygonRequestContext(endpoint: .tickerDetails, symbol: "AAPL"))
        XCTAssertTrue(reason.contains("not valid JSON"), reason)
        XCTAssertTrue(reason.contains("text/html"), reason)
        XCTAssertTrue(error!.description.contains("ticker details AAPL"), error!.description)
        XCTAssertEqual(server.requestCount, 1, "a malformed answer is not retried")
        // Other symbols are unaffected.
        let msft = try await client.tickerDetails(symbol: "MSFT")
        XCTAssertEqual(msft.ticker, "MSFT")
    }

    func testTruncatedJSONIsMalformedNamingEndpointAndSymbol() async throws {
        let server = try start()
        defer { server.stop() }
        server.inject(.truncatedJSON, symbol: "MSFT")
        server.inject(.truncatedJSON, pathContains: "/grouped/")
        let client = client(server)
        let day = CivilDate("2024-03-05")!
        let error = await expectError { _ = try await client.minuteBars(symbol: "MSFT", from: day, to: day) }
        guard case .malformedResponse(let context, 200, _)? = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertEqual(context, PolygonRequestContext(endpoint: .aggregates, symbol: "MSFT", date: "2024-03-05..2024-03-05"))
        let grouped = await expectError { _ = try await client.groupedDaily(date: day) }
        guard case .malformedResponse(let groupedContext, _, _)? = grouped else { return XCTFail("got \(String(describing: grouped))") }
        XCTAssertEqual(groupedContext, PolygonRequestContext(endpoint: .groupedDaily, date: "2024-03-05"))
    }

    func testMissingRequiredFieldAndWrongTypesAreMalformed() async throws {
        let bodies: [String: String] = [
            "/v2/aggs/grouped/locale/us/market/stocks/2024-03-05": #"{"status":"OK","results":[{"T":"X","o":1,"h":1,"l":1,"v":5,"t":1}]}"#,
            "/v3/reference/tickers/BAD": #"{"status":"OK","results":{"ticker":"BAD","market_cap":"lots"}}"#,
            "/v3/reference/tickers/EMPTY": #"{"status":"OK"}"#,
            "/v2/aggs/ticker/NULLS/range/1/day/2024-03-04/2024-03-05": #"{"status":"OK","results":null,"resultsCount":0}"#,
            "/v2/aggs/ticker/GONE/range/1/day/2024-03-04/2024-03-05": #"{"status":"OK","resultsCount":0}"#,
            "/v2/aggs/ticker/FRAC/range/1/day/2024-03-04/2024-03-05": #"{"status":"OK","results":[{"o":1.5,"h":2,"l":1,"c":1.75,"v":1.2345e+06,"t":1709528400000}]}"#,
            "/v2/aggs/ticker/ERR/range/1/day/2024-03-04/2024-03-05": #"{"status":"ERROR","request_id":"r","error":"Something went wrong"}"#,
        ]
        let server = try HTTPServer.start { request in
            bodies[request.path].map { .json(Data($0.utf8)) } ?? .json(Data("{}".utf8), status: 404)
        }
        defer { server.stop() }
        let client = PolygonClient(configuration: PolygonConfiguration(baseURL: server.baseURL, apiKey: ClientFaultTests.key, requestsPerSecond: 0))
        let a = CivilDate("2024-03-04")!, b = CivilDate("2024-03-05")!

        let missing = await expectError { _ = try await client.groupedDaily(date: b) }
        guard case .malformedResponse(_, _, let reason)? = missing else { return XCTFail("got \(String(describing: missing))") }
        XCTAssertTrue(reason.contains("missing required field 'c'") && reason.contains("results[0]"), reason)

        let wrongType = await expectError { _ = try await client.tickerDetails(symbol: "BAD") }
        guard case .malformedResponse(let context, _, let typeReason)? = wrongType else { return XCTFail("got \(String(describing: wrongType))") }
        XCTAssertEqual(context.symbol, "BAD")
        XCTAssertTrue(typeReason.contains("market_cap"), typeReason)

        let empty = await expectError { _ = try await client.tickerDetails(symbol: "EMPTY") }
        guard case .malformedResponse? = empty else { return XCTFail("got \(String(describing: empty))") }

        // results null or missing: no data, not an error.
        let nulls = try await client.dailyBars(symbol: "NULLS", from: a, to: b)
        XCTAssertEqual(nulls, [])
        let gone = try await client.dailyBars(symbol: "GONE", from: a, to: b)
        XCTAssertEqual(gone, [])

        // Fractional volume in exponent notation; vw and n missing.
        let frac = try await client.dailyBars(symbol: "FRAC", from: a, to: b)
        XCTAssertEqual(frac, [PolygonBar(open: 1.5, high: 2, low: 1, close: 1.75, volume: 1_234_500, vwap: nil, transactions: nil, timestamp: 1_709_528_400_000)])
        XCTAssertEqual(frac.first?.newYorkDate, a)

        let apiError = await expectError { _ = try await client.dailyBars(symbol: "ERR", from: a, to: b) }
        XCTAssertEqual(apiError, .apiError(PolygonRequestContext(endpoint: .aggregates, symbol: "ERR", date: "2024-03-04..2024-03-05"),
                                           status: 200, message: "Something went wrong"))
    }

    func testErrorStatusBodyWithStatus200IsApiError() async throws {
        let server = try start()
        defer { server.stop() }
        server.inject(.errorStatus(message: "Internal error, please retry"), symbol: "KO", times: 1)
        let client = client(server)
        let error = await expectError { _ = try await client.tickerDetails(symbol: "KO") }
        XCTAssertEqual(error, .apiError(PolygonRequestContext(endpoint: .tickerDetails, symbol: "KO"), status: 200,
                                        message: "Internal error, please retry"))
    }

    // MARK: - Authorization and not found

    func testNotAuthorized() async throws {
        let server = try start()
        defer { server.stop() }
        let wrong = client(server, key: "wrong-key")
        let error = await expectError { _ = try await wrong.tickerDetails(symbol: "AAPL") }
        XCTAssertEqual(error, .notAuthorized(PolygonRequestContext(endpoint: .tickerDetails, symbol: "AAPL"), status: 401, message: "Unknown API Key"))
        let none = client(server, key: nil)
        let missing = await expectError { _ = try await none.groupedDaily(date: CivilDate("2024-03-05")!) }
        XCTAssertEqual(missing, .notAuthorized(PolygonRequestContext(endpoint: .groupedDaily, date: "2024-03-05"), status: 401,
                                              message: "API Key was not provided"))
        XCTAssertEqual(server.requests.map(\.hasAuthorization), [true, false])
        XCTAssertEqual(server.requestCount, 2, "401 is not retried")
        server.inject(.notAuthorized, symbol: "AAPL")
        let entitled = await expectError { _ = try await self.client(server).tickerDetails(symbol: "AAPL") }
        guard case .notAuthorized(_, 403, let message)? = entitled else { return XCTFail("got \(String(describing: entitled))") }
        XCTAssertTrue(message.contains("not entitled"))
    }

    func testUnknownSymbolIsNotFound() async throws {
        let server = try start()
        defer { server.stop() }
        let client = client(server)
        let error = await expectError { _ = try await client.tickerDetails(symbol: "NOPE") }
        XCTAssertEqual(error, .notFound(PolygonRequestContext(endpoint: .tickerDetails, symbol: "NOPE"), message: "Ticker not found."))
        XCTAssertEqual(error?.status, 404)
        server.inject(.notFound, symbol: "ZAAA")
        let aggs = await expectError { _ = try await client.dailyBars(symbol: "ZAAA", from: CivilDate("2024-03-04")!, to: CivilDate("2024-03-05")!) }
        guard case .notFound(let context, _)? = aggs else { return XCTFail("got \(String(describing: aggs))") }
        XCTAssertEqual(context.symbol, "ZAAA")
        XCTAssertEqual(server.requestCount, 2, "404 is not retried")
    }

    // MARK: - Pagination

    func testMinuteAggregatesFollowNextURLAcrossPages() async throws {
        let server = try start()
        defer { server.stop() }
        let client = client(server) { $0.aggregatesLimit = 100 }
        let from = CivilDate("2024-03-08")!, to = CivilDate("2024-03-11")!  // Friday, weekend, Monday (after the DST switch)
        let bars = try await client.minuteBars(symbol: "AAPL", from: from, to: to)
        let expected = data.minuteBars(symbol: "AAPL", from: from, through: to)
        XCTAssertEqual(bars, expected)
        XCTAssertGreaterThan(expected.count, 500)
        let pages = (expected.count + 99) / 100
        XCTAssertEqual(server.requestCount, pages)
        XCTAssertEqual(client.requestCount, pages)
        XCTAssertEqual(client.limiter.permitsGranted, pages)
        let targets = server.requests.map(\.target)
        XCTAssertEqual(targets[0], "/v2/aggs/ticker/AAPL/range/1/minute/2024-03-08/2024-03-11?adjusted=true&sort=asc&limit=100")
        XCTAssertTrue(targets.dropFirst().allSatisfy { $0.hasPrefix("/v2/aggs/ticker/AAPL/range/1/minute/2024-03-08/2024-03-11?cursor=") })
        XCTAssertTrue(server.requests.allSatisfy(\.hasAuthorization))
        // Both days map to their New York dates, on either side of the 2024-03-10 DST switch.
        XCTAssertEqual(Set(bars.map(\.newYorkDate)), [from, to])
        assertKeyNeverInURL(server)
    }

    func testTickerListPagination() async throws {
        let server = try start()
        defer { server.stop() }
        let client = client(server) { $0.tickerListLimit = 7 }
        let tickers = try await client.tickers()
        XCTAssertEqual(tickers.map(\.ticker), data.symbols.sorted())
        XCTAssertEqual(server.requestCount, 5)
        XCTAssertEqual(tickers.first { $0.ticker == "AAPL" }?.name, "Apple Inc.")
    }

    func testNextURLApiKeyIsDroppedAndLoopsAreMalformed() async throws {
        let server = try HTTPServer.start { request in
            switch request.query("cursor") {
            case nil:
                return .json(Data(#"{"status":"OK","results":[{"ticker":"A"}],"next_url":"https://api.polygon.io/v3/reference/tickers?cursor=p2&apiKey=LEAKED"}"#.utf8))
            case "p2":
                return .json(Data(#"{"status":"OK","results":[{"ticker":"B"}],"next_url":"https://api.polygon.io/v3/reference/tickers?cursor=p2"}"#.utf8))
            default:
                return .json(Data("{}".utf8), status: 404)
            }
        }
        defer { server.stop() }
        let client = PolygonClient(configuration: PolygonConfiguration(baseURL: server.baseURL, apiKey: ClientFaultTests.key, requestsPerSecond: 0))
        let error = await expectError { _ = try await client.tickers() }
        guard case .malformedResponse(let context, _, let reason)? = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertEqual(context.endpoint, .tickerList)
        XCTAssertTrue(reason.contains("repeats"), reason)
        XCTAssertEqual(server.requestsHandled, 2, "the looping page was not fetched twice")
    }

    func testNextURLWithoutApiKeyOnConfiguredHost() async throws {
        let seen = FixtureLocked<[String]>([])
        let holder = FixtureLocked<String>("")
        let server = try HTTPServer.start { request in
            seen.withLock { $0.append(request.target) }
            let base = holder.withLock { $0 }
            if request.query("cursor") == nil {
                return .json(Data(#"{"status":"OK","results":[{"ticker":"A"}],"next_url":"\#(base)/v3/reference/tickers?cursor=p2&apiKey=LEAKED"}"#.utf8))
            }
            return .json(Data(#"{"status":"OK","results":[{"ticker":"B"}]}"#.utf8))
        }
        defer { server.stop() }
        holder.withLock { $0 = server.baseURL.absoluteString }
        let client = PolygonClient(configuration: PolygonConfiguration(baseURL: server.baseURL, apiKey: ClientFaultTests.key, requestsPerSecond: 0))
        let tickers = try await client.tickers()
        XCTAssertEqual(tickers.map(\.ticker), ["A", "B"])
        XCTAssertEqual(seen.withLock { $0 }.last, "/v3/reference/tickers?cursor=p2")
    }

    // MARK: - Timeouts

    func testTimeoutIsRetriedThenTyped() async throws {
        let server = try start()
        defer { server.stop() }
        server.inject(.delay(3), symbol: "JPM")
        let client = client(server, attempts: 2, timeout: 0.5)
        let error = await expectError { _ = try await client.tickerDetails(symbol: "JPM") }
        guard case .transport(let context, let underlying, 2)? = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertEqual(context.symbol, "JPM")
        guard case .timeout = underlying else { return XCTFail("got \(underlying)") }
        XCTAssertEqual(client.statistics.transportFailures, 2)
        server.clearFaults()
        server.inject(.delay(1.5), symbol: "XOM", times: 1)
        let recovered = try await client.tickerDetails(symbol: "XOM")
        XCTAssertEqual(recovered.ticker, "XOM", "a slow first answer times out, the retry succeeds")
    }

    // MARK: - Rate limiter

    func testLimiterBoundsConcurrencySeenByServer() async throws {
        let server = try start(latency: 0.03)
        defer { server.stop() }
        let client = client(server, maxConcurrent: 3)
        let symbols = Array(data.symbols.prefix(24))
        let names = try await withThrowingTaskGroup(of: String.self) { group in
            for symbol in symbols { group.addTask { try await client.tickerDetails(symbol: symbol).ticker } }
            var all: [String] = []
            for try await name in group { all.append(name) }
            return all
        }
        XCTAssertEqual(Set(names), Set(symbols))
        XCTAssertLessThanOrEqual(server.maxInFlight, 3)
        XCTAssertGreaterThanOrEqual(server.maxInFlight, 1)
        XCTAssertLessThanOrEqual(client.limiter.maxInFlightObserved, 3)
        XCTAssertEqual(client.limiter.inFlight, 0)
        XCTAssertEqual(server.requestCount, 24)
    }

    func testOneLimiterSharedByTwoClients() async throws {
        let server = try start(latency: 0.02)
        defer { server.stop() }
        let shared = PolygonRateLimiter(requestsPerSecond: 0, maxConcurrent: 2)
        let first = client(server, maxConcurrent: 8, limiter: shared)
        let second = client(server, maxConcurrent: 8, limiter: shared)
        let symbols = Array(data.symbols.prefix(16))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, symbol) in symbols.enumerated() {
                let client = index.isMultiple(of: 2) ? first : second
                group.addTask { _ = try await client.tickerDetails(symbol: symbol) }
            }
            try await group.waitForAll()
        }
        XCTAssertLessThanOrEqual(server.maxInFlight, 2)
        XCTAssertEqual(shared.permitsGranted, 16)
        XCTAssertEqual(first.requestCount + second.requestCount, 16)
    }

    func testLimiterWaitIsCancellable() async throws {
        let limiter = PolygonRateLimiter(requestsPerSecond: 0, maxConcurrent: 1)
        try await limiter.acquire()
        let waiter = Task { try await limiter.acquire() }
        while limiter.waiting == 0 { try await Task.sleep(nanoseconds: 1_000_000) }
        waiter.cancel()
        do {
            try await waiter.value
            XCTFail("a cancelled waiter must not get a permit")
        } catch {
            XCTAssertTrue(error is CancellationError, "\(error)")
        }
        XCTAssertEqual(limiter.waiting, 0)
        XCTAssertEqual(limiter.inFlight, 1)
        limiter.release()
        XCTAssertEqual(limiter.inFlight, 0)
        XCTAssertEqual(limiter.permitsGranted, 1)
    }

    // MARK: - The key stays secret

    func testKeyNeverInURLsErrorsOrDescriptions() async throws {
        let server = try start()
        defer { server.stop() }
        server.inject(.serverError(status: 502), symbol: "AAPL", times: 1)
        server.inject(.htmlBody, symbol: "WMT")
        let client = client(server) {
            $0.aggregatesLimit = 50
            $0.tickerListLimit = 5
        }
        let day = CivilDate("2024-03-06")!
        _ = try await client.minuteBars(symbol: "AAPL", from: day, to: day)
        _ = try await client.tickers()
        _ = try await client.groupedDaily(date: day)
        _ = try await client.upcomingMarketStatus()
        _ = await expectError { _ = try await client.tickerDetails(symbol: "WMT") }
        _ = await expectError { _ = try await client.tickerDetails(symbol: "NOPE") }
        assertKeyNeverInURL(server)
        XCTAssertTrue(server.requests.allSatisfy(\.hasAuthorization))
        XCTAssertFalse("\(client.configuration)".contains(ClientFaultTests.key))
        XCTAssertFalse(String(reflecting: client.configuration).contains(ClientFaultTests.key))
        var dumped = ""
        dump(client.configuration, to: &dumped)
        XCTAssertFalse(dumped.contains(ClientFaultTests.key))
        XCTAssertTrue("\(client.configuration)".contains(Redactor.placeholder))
    }
}

final class MeasuringTests: XCTestCase {
    func testMeasuringCountsOnlyTheEnclosedCallsIncludingChildTasks() async throws {
        let data = SampleMarketData(symbols: 10, seed: 4, from: CivilDate("2024-03-04")!, through: CivilDate("2024-03-08")!)
        let server = try SamplePolygonServer.start(data: data)
        defer { server.stop() }
        server.inject(.serverError(status: 500), symbol: "MSFT", times: 1)
        let client = PolygonClient(configuration: PolygonConfiguration(
            baseURL: server.baseURL, requestsPerSecond: 0, retry: PolygonRetryPolicy(maxAttempts: 3, baseDelay: 0.001, maxDelay: 0.002),
            tickerListLimit: 3))
        _ = try await client.tickerDetails(symbol: "AAPL")  // outside any measurement
        let (count, stats) = try await PolygonClient.measuring { () async throws -> Int in
            try await withThrowingTaskGroup(of: Int.self) { group in
                group.addTask { try await client.tickers().count }                      // 4 pages
                group.addTask { _ = try await client.tickerDetails(symbol: "MSFT"); return 0 }  // 500, then 200
                var total = 0
                for try await n in group { total += n }
                return total
            }
        }
        XCTAssertEqual(count, 10)
        XCTAssertEqual(stats.requests, 6)
        XCTAssertEqual(stats.retries, 1)
        XCTAssertEqual(stats.serverErrorResponses, 1)
        XCTAssertEqual(client.requestCount, 7)
    }
}
