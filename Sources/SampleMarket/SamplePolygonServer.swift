import Foundation
import Toolkit
import HTTPServer
import Polygon

/// Settings of a `SamplePolygonServer`.
public struct SampleServerOptions: Sendable {
    /// When set, every request must carry `Authorization: Bearer <apiKey>` (or, as the real API
    /// also allows, an `apiKey` query item); otherwise it gets 401 with Polygon's NOT_AUTHORIZED JSON.
    public var apiKey: String?
    /// Seconds added to every answer (to make benchmarks behave like a remote API). Default 0.
    public var latency: TimeInterval
    /// The address to listen on. Default 127.0.0.1.
    public var host: String
    /// The port; 0 (default) picks a free one.
    public var port: UInt16
    /// `limit` of the aggregates endpoint when the request has none (Polygon's default: 5000).
    public var defaultAggregatesLimit: Int
    /// `limit` of the ticker list when the request has none (Polygon's default: 100).
    public var defaultTickerListLimit: Int
    /// False: the Benzinga earnings endpoint answers 403 NOT_AUTHORIZED, as for a plan without
    /// the add-on. Default true.
    public var earningsEntitled: Bool
    /// False: the float endpoint answers 403 NOT_AUTHORIZED. Default true.
    public var floatEntitled: Bool
    /// When above 0, the server enforces a plan's quota: a request arriving when this many were
    /// already received in the preceding second gets 429 (no `Retry-After`). Default 0 (no limit).
    public var requestsPerSecondLimit: Int

    /// Creates options; every value has a default.
    public init(apiKey: String? = nil, latency: TimeInterval = 0, host: String = "127.0.0.1", port: UInt16 = 0,
                defaultAggregatesLimit: Int = 5000, defaultTickerListLimit: Int = 100, earningsEntitled: Bool = true,
                floatEntitled: Bool = true, requestsPerSecondLimit: Int = 0) {
        self.apiKey = apiKey
        self.latency = latency
        self.host = host
        self.port = port
        self.defaultAggregatesLimit = defaultAggregatesLimit
        self.defaultTickerListLimit = defaultTickerListLimit
        self.earningsEntitled = earningsEntitled
        self.floatEntitled = floatEntitled
        self.requestsPerSecondLimit = requestsPerSecondLimit
    }
}

/// A misbehaviour the sample server can be told to show.
public enum SampleFault: Sendable, Equatable {
    /// 429 with Polygon's "exceeded the maximum requests" JSON and `Retry-After: seconds` (no header when nil).
    case rateLimited(retryAfter: Int?)
    /// A server error with this status (500, 502, 503...) and a JSON error body.
    case serverError(status: Int)
    /// Status 200 with an HTML page (as a proxy or captive portal answers).
    case htmlBody
    /// Status 200 with the real JSON answer cut in half.
    case truncatedJSON
    /// Status 200 with `{"status":"ERROR","error":...}`.
    case errorStatus(message: String)
    /// Waits this many seconds, then answers normally.
    case delay(TimeInterval)
    /// 404 with Polygon's NOT_FOUND JSON (as for an unknown ticker).
    case notFound
    /// 403 with Polygon's NOT_AUTHORIZED JSON (as for a plan without access).
    case notAuthorized
    /// No answer: the connection is closed (the client sees an empty reply, a transport failure).
    case dropConnection
}

/// One request the sample server received.
public struct SampleRecordedRequest: Sendable, Equatable {
    /// The method.
    public var method: String
    /// The decoded path.
    public var path: String
    /// The query string as sent (nil when none).
    public var rawQuery: String?
    /// The full target as sent (path and query).
    public var target: String
    /// True when an `Authorization` header was present.
    public var hasAuthorization: Bool
    /// The status answered (0 when the connection was dropped without an answer).
    public var status: Int
    /// When the request arrived (monotonic clock of the server's process).
    public var receivedAt: ContinuousClock.Instant
}

/// A Polygon-compatible HTTP server over `SampleMarketData`, for tests, the demo and benchmarks.
///
/// Serves, in Polygon's JSON shapes: grouped daily (`t` at 16:00 New York), per-ticker
/// aggregates (day, N-minute and N-hour bars; daily stamped at New York midnight) with
/// `next_url` pagination honouring `limit` and `sort`, ticker details (404 for unknown symbols),
/// the ticker list with cursor pagination, upcoming market holidays, the Benzinga earnings
/// calendar (`/benzinga/v1/earnings`) and free float (`/stocks/vX/float`). Faults can be injected
/// at run time per symbol and/or per path; every request is recorded.
///
/// ```swift
/// let server = try SamplePolygonServer.start(data: SampleMarketData(symbols: 50), options: .init(apiKey: "k"))
/// server.inject(.rateLimited(retryAfter: 1), symbol: "AAPL", times: 2)
/// // point PolygonConfiguration.baseURL at server.baseURL
/// ```
public final class SamplePolygonServer: Sendable {
    /// The data served.
    public let data: SampleMarketData
    /// The options the server started with.
    public let options: SampleServerOptions
    private let server: HTTPServer
    private let state: SampleState

    /// `http://127.0.0.1:port`.
    public var baseURL: URL { server.baseURL }
    /// The bound port.
    public var port: UInt16 { server.port }

    private init(data: SampleMarketData, options: SampleServerOptions, server: HTTPServer, state: SampleState) {
        self.data = data
        self.options = options
        self.server = server
        self.state = state
    }

    /// Starts a server on `options.host:options.port` (a free port by default).
    public static func start(data: SampleMarketData, options: SampleServerOptions = SampleServerOptions()) throws -> SamplePolygonServer {
        let state = SampleState()
        let router = SampleRouter(data: data, options: options, state: state)
        let server = try HTTPServer.start(host: options.host, port: options.port) { request in
            router.handle(request)
        }
        state.baseURL.withLock { $0 = server.baseURL.absoluteString }
        return SamplePolygonServer(data: data, options: options, server: server, state: state)
    }

    /// Makes matching requests show `fault`: requests whose symbol is `symbol` (when given) and
    /// whose path contains `pathContains` (when given), for the next `times` matching requests
    /// (nil: until cleared). Rules are checked in the order added; the first that matches applies.
    public func inject(_ fault: SampleFault, symbol: String? = nil, pathContains: String? = nil, times: Int? = nil) {
        state.faults.withLock { $0.append(FaultRule(fault: fault, symbol: symbol, pathContains: pathContains, remaining: times)) }
    }

    /// Removes every fault rule.
    public func clearFaults() { state.faults.withLock { $0.removeAll() } }

    /// Requests received so far.
    public var requestCount: Int { state.records.withLock { $0.count } }
    /// Every request received so far, oldest first.
    public var requests: [SampleRecordedRequest] { state.records.withLock { $0 } }
    /// The most requests ever being answered at once.
    public var maxInFlight: Int { state.inFlight.withLock { $0.max } }
    /// Forgets recorded requests and the in-flight maximum.
    public func resetRecords() {
        state.records.withLock { $0.removeAll() }
        state.inFlight.withLock { $0.max = $0.current }
    }

    /// A client configuration pointing at this server, with its API key (if it requires one)
    /// and no rate limit; adjust the returned value as needed.
    public func clientConfiguration(retry: PolygonRetryPolicy = PolygonRetryPolicy(maxAttempts: 4, baseDelay: 0.01, maxDelay: 0.1, maxRetryAfter: 0.1)) -> PolygonConfiguration {
        PolygonConfiguration(baseURL: baseURL, apiKey: options.apiKey, requestsPerSecond: 0, retry: retry)
    }

    /// Stops the server.
    public func stop() { server.stop() }
}

struct FaultRule: Sendable {
    var fault: SampleFault
    var symbol: String?
    var pathContains: String?
    var remaining: Int?
}

final class SampleState: Sendable {
    let faults = LockedBox<[FaultRule]>([])
    let records = LockedBox<[SampleRecordedRequest]>([])
    let inFlight = LockedBox<(current: Int, max: Int)>((0, 0))
    let requestIDs = LockedBox<UInt64>(0)
    let baseURL = LockedBox<String>("")
    /// Arrival times of the last second's requests (for `requestsPerSecondLimit`).
    let recentArrivals = LockedBox<[ContinuousClock.Instant]>([])

    /// Records an arrival at `now`; false when `limit` requests already arrived in the second
    /// before it (the request is then refused and does not count).
    func admit(at now: ContinuousClock.Instant, limit: Int) -> Bool {
        recentArrivals.withLock { arrivals in
            arrivals.removeAll { now - $0 >= .seconds(1) }
            guard arrivals.count < limit else { return false }
            arrivals.append(now)
            return true
        }
    }

    func takeFault(symbol: String?, path: String) -> SampleFault? {
        faults.withLock { rules in
            for index in rules.indices {
                let rule = rules[index]
                if let wanted = rule.symbol, wanted != symbol { continue }
                if let fragment = rule.pathContains, !path.contains(fragment) { continue }
                if let remaining = rule.remaining {
                    if remaining <= 0 { continue }
                    rules[index].remaining = remaining - 1
                }
                return rule.fault
            }
            return nil
        }
    }

    func nextRequestID() -> String {
        let n = requestIDs.withLock { value -> UInt64 in
            value += 1
            return value
        }
        return String(format: "%032llx", n)
    }
}

