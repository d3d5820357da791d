import Foundation
import Toolkit
import HTTPClient

/// Aggregate bar sizes.
public enum PolygonTimespan: String, Sendable, CaseIterable {
    /// Minute bars.
    case minute
    /// Hour bars.
    case hour
    /// Daily bars.
    case day
    /// Weekly bars.
    case week
}

/// Counters of a client's traffic, for task results and metrics.
public struct PolygonClientStatistics: Sendable, Equatable {
    /// HTTP requests sent (first attempts, retries and `next_url` pages).
    public var requests = 0
    /// Retries (requests sent again after a 429, 5xx or transport failure).
    public var retries = 0
    /// 429 answers received.
    public var rateLimitedResponses = 0
    /// 5xx answers received.
    public var serverErrorResponses = 0
    /// Transport failures (no HTTP answer).
    public var transportFailures = 0
    /// Calls that ended in a `PolygonError`.
    public var failedCalls = 0
    /// Response body bytes received.
    public var bytesReceived = 0
}

/// The task-local tally behind `PolygonClient.measuring`.
enum PolygonTally {
    @TaskLocal static var current: LockedBox<PolygonClientStatistics>?
}

/// A retry about to happen, reported to the client's observer (for logs and tests).
public struct PolygonRetryEvent: Sendable, Equatable {
    /// What the request was for.
    public var context: PolygonRequestContext
    /// The attempt that failed (1 = the first).
    public var attempt: Int
    /// The HTTP status that caused the retry, or nil for a transport failure.
    public var status: Int?
    /// Seconds the client waits before the next attempt.
    public var delay: TimeInterval
    /// The `Retry-After` seconds the server asked for, if any.
    public var retryAfter: TimeInterval?
}

/// A client for the Polygon.io (Massive) REST API.
///
/// The API key travels only in an `Authorization: Bearer` header: it is never put in a URL, an
/// error or a description, and an `apiKey=` query item in a `next_url` is dropped. Every
/// request (retries and `next_url` pages included) passes through one `PolygonRateLimiter`
/// and, when given, a `PolygonRequestBudget` shared with other processes.
/// Create one client per process and share it between tasks (it is `Sendable`).
public final class PolygonClient: Sendable {
    /// The configuration the client was made with.
    public let configuration: PolygonConfiguration
    /// The limiter every request of this client passes.
    public let limiter: PolygonRateLimiter
    /// The cluster-wide budget every request also asks, if any.
    public let budget: (any PolygonRequestBudget)?
    private let http: HTTPClient
    private let stats = LockedBox(PolygonClientStatistics())
    private let onRetry: (@Sendable (PolygonRetryEvent) -> Void)?

    /// Creates a client. `limiter` defaults to a new one from the configuration (pass one
    /// limiter to every client of a process to share the limit); `http` defaults to a new
    /// `HTTPClient` with the configuration's timeouts; `onRetry` hears about each retry;
    /// `budget` is asked for every request after the limiter (nil: this process's limit only).
    public init(configuration: PolygonConfiguration, limiter: PolygonRateLimiter? = nil, http: HTTPClient? = nil,
                budget: (any PolygonRequestBudget)? = nil, onRetry: (@Sendable (PolygonRetryEvent) -> Void)? = nil) {
        self.configuration = configuration
        self.budget = budget
        self.limiter = limiter ?? PolygonRateLimiter(requestsPerSecond: configuration.requestsPerSecond,
                                                     maxConcurrent: configuration.maxConcurrentRequests)
        self.http = http ?? HTTPClient(configuration: HTTPClientConfiguration(
            connectTimeout: configuration.connectTimeout, timeout: configuration.requestTimeout,
            maxConcurrentTransfers: configuration.maxConcurrentRequests))
        self.onRetry = onRetry
    }

    /// A client configured from `POLYGON_API_KEY`/`MASSIVE_API_KEY` and `POLYGON_BASE_URL`.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> PolygonClient {
        PolygonClient(configuration: try PolygonConfiguration.fromEnvironment(environment))
    }

    /// HTTP requests sent so far (retries and pages included).
    public var requestCount: Int { stats.withLock { $0.requests } }

    /// A snapshot of the traffic counters.
    public var statistics: PolygonClientStatistics { stats.withLock { $0 } }

    // MARK: - Endpoints

    /// Daily bars of the whole US stock market for one date (`T` is the ticker; `t` is 16:00
    /// New York). An empty array when the API has no data for the date (weekend, holiday).
    public func groupedDaily(date: CivilDate, adjusted: Bool = true) async throws -> [PolygonGroupedBar] {
        let context = PolygonRequestContext(endpoint: .groupedDaily, date: date.description)
        let url = try makeURL(path: "/v2/aggs/grouped/locale/us/market/stocks/\(date)",
                              query: [URLQueryItem(name: "adjusted", value: String(adjusted))], context: context)
        let page = try await get(url, context: context, as: PolygonAggregatesPage<PolygonGroupedBar>.self)
        return page.results ?? []
    }

    /// Every aggregate bar of `symbol` from `from` through `to` (New York dates), oldest first,
    /// following `next_url` pages. Empty when the API has none.
    public func aggregates(symbol: String, multiplier: Int = 1, timespan: PolygonTimespan, from: CivilDate, to: CivilDate,
                           adjusted: Bool = true) async throws -> [PolygonBar] {
        let context = PolygonRequestContext(endpoint: .aggregates, symbol: symbol, date: "\(from)..\(to)")
        guard multiplier >= 1 else { throw PolygonError.invalidArgument(context, reason: "multiplier must be at least 1") }
        let encoded = try encodeSymbol(symbol, context: context)
        let first = try makeURL(path: "/v2/aggs/ticker/\(encoded)/range/\(multiplier)/\(timespan.rawValue)/\(from)/\(to)",
                                query: [URLQueryItem(name: "adjusted", value: String(adjusted)),
                                        URLQueryItem(name: "sort", value: "asc"),
                                        URLQueryItem(name: "limit", value: String(configuration.aggregatesLimit))],
                                context: context)
        var bars: [PolygonBar] = []
        try await paginate(first: first, context: context, as: PolygonAggregatesPage<PolygonBar>.self) { page in
            bars.append(contentsOf: page.results ?? [])
            return page.nextURL
        }
        return bars
    }

    /// Daily bars of `symbol` (stamped at New York midnight), following pages.
    public func dailyBars(symbol: String, from: CivilDate, to: CivilDate) async throws -> [PolygonBar] {
        try await aggregates(symbol: symbol, timespan: .day, from: from, to: to)
    }

    /// One-minute bars of `symbol` (pre-market and after-hours included), following pages.
    public func minuteBars(symbol: String, from: CivilDate, to: CivilDate) async throws -> [PolygonBar] {
        try await aggregates(symbol: symbol, timespan: .minute, from: from, to: to)
    }

    /// Details of one ticker (name, market cap, shares outstanding, SIC code...). 404 → `.notFound`.
    public func tickerDetails(symbol: String, date: CivilDate? = nil) async throws -> PolygonTickerDetails {
        let context = PolygonRequestContext(endpoint: .tickerDetails, symbol: symbol, date: date?.description)
        let encoded = try encodeSymbol(symbol, context: context)
        let url = try makeURL(path: "/v3/reference/tickers/\(encoded)",
                              query: date.map { [URLQueryItem(name: "date", value: $0.description)] } ?? [], context: context)
        let response = try await get(url, context: context, as: PolygonTickerDetailsResponse.self)
        guard let details = response.results else {
            throw fail(.malformedResponse(context, status: 200, reason: "missing field 'results'"))
        }
        return details
    }

    /// All tickers matching the filters, following `next_url` pages (default: active US common stocks).
    public func tickers(market: String = "stocks", type: String? = "CS", active: Bool = true) async throws -> [PolygonTicker] {
        let context = PolygonRequestContext(endpoint: .tickerList)
        var query = [URLQueryItem(name: "market", value: market)]
        if let type { query.append(URLQueryItem(name: "type", value: type)) }
        query.append(URLQueryItem(name: "active", value: String(active)))
        query.append(URLQueryItem(name: "limit", value: String(configuration.tickerListLimit)))
        let first = try makeURL(path: "/v3/reference/tickers", query: query, context: context)
        var tickers: [PolygonTicker] = []
        try await paginate(first: first, context: context, as: PolygonTickerListPage.self) { page in
            tickers.append(contentsOf: page.results ?? [])
            return page.nextURL
        }
        return tickers
    }

    /// Upcoming market holidays and early closes.
    public func upcomingMarketStatus() async throws -> [PolygonMarketHoliday] {
        let context = PolygonRequestContext(endpoint: .upcomingMarketStatus)
        let url = try makeURL(path: "/v1/marketstatus/upcoming", query: [], context: context)
        return try await get(url, context: context, as: [PolygonMarketHoliday].self)
    }

    /// Benzinga earnings events of one ticker dated `from` through `to` (inclusive), every
    /// `next_url` page followed. A plan without the Benzinga add-on answers 403
    /// (`.notAuthorized` with status 403).
    public func earnings(symbol: String, from: CivilDate, to: CivilDate) async throws -> [PolygonEarning] {
        let context = PolygonRequestContext(endpoint: .earnings, symbol: symbol, date: "\(from)..\(to)")
        _ = try encodeSymbol(symbol, context: context)
        let first = try makeURL(path: "/benzinga/v1/earnings", query: [
            URLQueryItem(name: "ticker", value: symbol),
            URLQueryItem(name: "date.gte", value: from.description),
            URLQueryItem(name: "date.lte", value: to.description),
            URLQueryItem(name: "sort", value: "date.asc"),
            URLQueryItem(name: "limit", value: "1000"),
        ], context: context)
        var rows: [PolygonEarning] = []
        try await paginate(first: first, context: context, as: PolygonResultsPage<PolygonEarning>.self) { page in
            rows.append(contentsOf: page.results ?? [])
            return page.nextURL
        }
        return rows
    }

    /// The newest free-float figure of one ticker (`/stocks/vX/float`), or nil when the API has
    /// none. A plan without the endpoint answers 403 (`.notAuthorized` with status 403).
    public func freeFloat(symbol: String) async throws -> PolygonFloat? {
        let context = PolygonRequestContext(endpoint: .float, symbol: symbol)
        _ = try encodeSymbol(symbol, context: context)
        let url = try makeURL(path: "/stocks/vX/float", query: [
            URLQueryItem(name: "ticker", value: symbol),
            URLQueryItem(name: "sort", value: "effective_date.desc"),
            URLQueryItem(name: "limit", value: "1"),
        ], context: context)
        let page = try await get(url, context: context, as: PolygonResultsPage<PolygonFloat>.self)
        return page.results?.max { ($0.effectiveDate ?? "") < ($1.effectiveDate ?? "") }
    }

    // MARK: - URLs

    private static let symbolAllowed: CharacterSet = {
        var set = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)...Unicode.Scalar(127)))
        set.insert(charactersIn: ".-_:")
        return set
    }()

    private func encodeSymbol(_ symbol: String, context: PolygonRequestContext) throws -> String {
        guard !symbol.isEmpty, symbol.count <= 64,
              let encoded = symbol.addingPercentEncoding(withAllowedCharacters: PolygonClient.symbolAllowed) else {
            throw fail(.invalidArgument(context, reason: "symbol must be 1 to 64 characters"))
        }
        return encoded
    }

    private func makeURL(path: String, query: [URLQueryItem], context: PolygonRequestContext) throws -> URL {
        guard var components = URLComponents(url: configuration.baseURL, resolvingAgainstBaseURL: false) else {
            throw fail(.invalidArgument(context, reason: "base URL is not valid"))
        }
        var prefix = components.percentEncodedPath
        while prefix.hasSuffix("/") { prefix.removeLast() }
        components.percentEncodedPath = prefix + path
        components.queryItems = query.isEmpty ? nil : query
        guard let url = components.url else { throw fail(.invalidArgument(context, reason: "cannot build URL")) }
        return url
    }

    /// The URL to fetch for a `next_url`: its path and query as given minus any `apiKey` item;
    /// re-rooted onto the configured base URL when it names another host (Polygon's `next_url`
    /// names api.massive.com even when called as api.polygon.io, and a proxy or test server may
    /// be configured), so the key only ever goes to the configured host.
    func resolveNext(_ next: String, context: PolygonRequestContext) throws -> URL {
        guard var components = URLComponents(string: next) else {
            throw fail(.malformedResponse(context, status: 200, reason: "next_url is not a URL"))
        }
        if let items = components.queryItems {
            let kept = items.filter { $0.name.lowercased() != "apikey" }
            if kept.count != items.count {
                components.queryItems = kept.isEmpty ? nil : kept
            }
        }
        guard let base = URLComponents(url: configuration.baseURL, resolvingAgainstBaseURL: false) else {
            throw fail(.invalidArgument(context, reason: "base URL is not valid"))
        }
        let sameHost = components.host?.lowercased() == base.host?.lowercased()
            && components.scheme?.lowercased() == base.scheme?.lowercased() && components.port == base.port
        if !sameHost {
            var rooted = base
            var prefix = base.percentEncodedPath
            while prefix.hasSuffix("/") { prefix.removeLast() }
            var path = components.percentEncodedPath
            if !path.hasPrefix("/") { path = "/" + path }
            rooted.percentEncodedPath = (prefix.isEmpty || path.hasPrefix(prefix + "/")) ? path : prefix + path
            rooted.percentEncodedQuery = components.percentEncodedQuery
            components = rooted
        }
        components.fragment = nil
        guard let url = components.url else {
            throw fail(.malformedResponse(context, status: 200, reason: "next_url is not a URL"))
        }
        return url
    }

    // MARK: - Requests

    private func paginate<Page: Decodable>(first: URL, context: PolygonRequestContext, as type: Page.Type,
                                           consume: (Page) -> String?) async throws {
        var url = first
        var seen: Set<String> = [first.absoluteString]
        var pages = 0
        while true {
            let page = try await get(url, context: context, as: Page.self)
            pages += 1
            guard let next = consume(page), !next.isEmpty else { return }
            guard pages < configuration.maxPages else {
                throw fail(.malformedResponse(context, status: 200, reason: "more than \(configuration.maxPages) pages"))
            }
            url = try resolveNext(next, context: context)
            guard seen.insert(url.absoluteString).inserted else {
                throw fail(.malformedResponse(context, status: 200, reason: "next_url repeats an earlier page"))
            }
        }
    }

    /// Updates the client's counters and those of the enclosing `measuring` scope, if any.
    private func record(_ update: (inout PolygonClientStatistics) -> Void) {
        stats.withLock { update(&$0) }
        PolygonTally.current?.withLock { update(&$0) }
    }

    /// Runs `body` and returns, with its result, the Polygon traffic it caused: every request
    /// made by any client inside `body`, its child tasks included (a task-local tally). Use it
    /// to report per-task request counts while tasks share one client.
    public static func measuring<T>(_ body: () async throws -> T) async rethrows -> (value: T, statistics: PolygonClientStatistics) {
        let tally = LockedBox(PolygonClientStatistics())
        let value = try await PolygonTally.$current.withValue(tally) { try await body() }
        return (value, tally.withLock { $0 })
    }

    private func fail(_ error: PolygonError) -> PolygonError {
        record { $0.failedCalls += 1 }
        return error
    }

    /// GETs `url` with retries and decodes the body as `T`.
    private func get<T: Decodable>(_ url: URL, context: PolygonRequestContext, as type: T.Type) async throws -> T {
        var headers: [(name: String, value: String)] = [("Accept", "application/json")]
        if let key = configuration.apiKey { headers.append(("Authorization", "Bearer \(key)")) }
        let request = HTTPRequest(method: "GET", url: url, headers: headers)
        let policy = configuration.retry
        var attempt = 0
        while true {
            attempt += 1
            try await limiter.acquire()
            var permit: PolygonBudgetPermit?
            if let budget {
                do {
                    permit = try await budget.acquire()
                } catch {
                    limiter.release()
                    throw error
                }
            }
            record {
                $0.requests += 1
                if attempt > 1 { $0.retries += 1 }
            }
            let response: HTTPResponse
            do {
                response = try await http.send(request)
                if let budget, let permit { await budget.release(permit) }
                limiter.release()
            } catch let error as HTTPClientError {
                if let budget, let permit { await budget.release(permit) }
                limiter.release()
                record { $0.transportFailures += 1 }
                if case .cancelled = error, Task.isCancelled { throw CancellationError() }
                if error.isTransient && attempt < policy.maxAttempts {
                    try await pause(context: context, attempt: attempt, status: nil, retryAfter: nil)
                    continue
                }
                throw fail(.transport(context, error, attempts: attempt))
            } catch {
                if let budget, let permit { await budget.release(permit) }
                limiter.release()
                throw error
            }
            record { $0.bytesReceived += response.body.count }
            let status = response.status
            switch status {
            case 200..<300:
                return try decode(response, context: context, as: T.self)
            case 401, 403:
                throw fail(.notAuthorized(context, status: status, message: message(in: response)))
            case 404:
                throw fail(.notFound(context, message: message(in: response)))
            case 429, 500..<600:
                record { s in
                    if status == 429 { s.rateLimitedResponses += 1 } else { s.serverErrorResponses += 1 }
                }
                if attempt < policy.maxAttempts {
                    let retryAfter = response.header("retry-after").flatMap(PolygonClient.parseRetryAfter)
                    try await pause(context: context, attempt: attempt, status: status, retryAfter: retryAfter)
                    continue
                }
                throw fail(.httpStatus(context, status: status, attempts: attempt, message: message(in: response)))
            default:
                throw fail(.httpStatus(context, status: status, attempts: attempt, message: message(in: response)))
            }
        }
    }

    private func pause(context: PolygonRequestContext, attempt: Int, status: Int?, retryAfter: TimeInterval?) async throws {
        let policy = configuration.retry
        var delay: TimeInterval
        if let retryAfter {
            delay = min(max(0, retryAfter), policy.maxRetryAfter)
        } else {
            delay = policy.backoff(retry: attempt)
            if policy.jitter && delay > 0 { delay = Double.random(in: (delay / 2)...delay) }
        }
        onRetry?(PolygonRetryEvent(context: context, attempt: attempt, status: status, delay: delay, retryAfter: retryAfter))
        if delay > 0 { try await Task.sleep(for: .nanoseconds(Int64(min(delay, 86_400) * 1_000_000_000))) }
    }

    /// `Retry-After` as seconds (a number, or an HTTP date).
    static func parseRetryAfter(_ value: String) -> TimeInterval? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Double(trimmed), seconds.isFinite { return max(0, seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: trimmed) else { return nil }
        return max(0, date.timeIntervalSinceNow)
    }

    private func decode<T: Decodable>(_ response: HTTPResponse, context: PolygonRequestContext, as type: T.Type) throws -> T {
        let body = response.body
        let decoder = JSONDecoder()
        if let probe = try? decoder.decode(PolygonStatusProbe.self, from: body), let status = probe.status?.uppercased() {
            let text = sanitize(probe.message ?? probe.error ?? status)
            if status == "NOT_AUTHORIZED" { throw fail(.notAuthorized(context, status: response.status, message: text)) }
            if status == "ERROR" { throw fail(.apiError(context, status: response.status, message: text)) }
            if status == "NOT_FOUND" { throw fail(.notFound(context, message: text)) }
        }
        do {
            return try decoder.decode(T.self, from: body)
        } catch let error as DecodingError {
            throw fail(.malformedResponse(context, status: response.status, reason: describe(error, response: response)))
        } catch {
            throw fail(.malformedResponse(context, status: response.status, reason: "undecodable body"))
        }
    }

    private func describe(_ error: DecodingError, response: HTTPResponse) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            let text = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return text.isEmpty ? "top level" : String(text.drop { $0 == "." })
        }
        switch error {
        case .keyNotFound(let key, let c):
            let at = path(c.codingPath)
            return "missing required field '\(key.stringValue)'" + (at == "top level" ? "" : " in \(at)")
        case .valueNotFound(_, let c):
            return "null where a value is required at \(path(c.codingPath))"
        case .typeMismatch(let expected, let c):
            return "wrong type at \(path(c.codingPath)) (expected \(expected))"
        case .dataCorrupted(let c):
            if c.codingPath.isEmpty {
                let type = response.header("content-type").map { " (content-type \(sanitize($0)))" } ?? ""
                return response.body.isEmpty ? "empty body" : "body is not valid JSON\(type), \(response.body.count) bytes"
            }
            return "invalid value at \(path(c.codingPath)): \(sanitize(c.debugDescription))"
        @unknown default:
            return "undecodable body"
        }
    }

    /// The API's own message in an error body (`message`, else `error`), or a short plain-text excerpt.
    private func message(in response: HTTPResponse) -> String {
        if let probe = try? JSONDecoder().decode(PolygonStatusProbe.self, from: response.body),
           let text = probe.message ?? probe.error {
            return sanitize(text)
        }
        return ""
    }

    /// Cuts a server-provided text to one short line and removes the key, should a server echo it.
    private func sanitize(_ text: String) -> String {
        var line = String(text.prefix(300)).replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
        if let key = configuration.apiKey, !key.isEmpty { line = Redactor.scrub(line, secrets: [key]) }
        return line
    }
}
