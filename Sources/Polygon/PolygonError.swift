import Foundation
import HTTPClient

/// The Polygon endpoints the client calls.
public enum PolygonEndpoint: String, Sendable, Equatable, CaseIterable {
    /// `/v2/aggs/grouped/locale/us/market/stocks/{date}`.
    case groupedDaily = "grouped daily"
    /// `/v2/aggs/ticker/{symbol}/range/{multiplier}/{timespan}/{from}/{to}`.
    case aggregates = "aggregates"
    /// `/v3/reference/tickers/{symbol}`.
    case tickerDetails = "ticker details"
    /// `/v3/reference/tickers`.
    case tickerList = "ticker list"
    /// `/v1/marketstatus/upcoming`.
    case upcomingMarketStatus = "upcoming market status"
    /// `/benzinga/v1/earnings` (Benzinga earnings calendar; not in every plan).
    case earnings = "earnings"
    /// `/stocks/vX/float` (free float; not in every plan).
    case float = "float"
}

/// What a request was about, for errors: the endpoint and the symbol and/or date(s).
public struct PolygonRequestContext: Sendable, Equatable, CustomStringConvertible {
    /// The endpoint.
    public var endpoint: PolygonEndpoint
    /// The symbol, when the request was for one.
    public var symbol: String?
    /// The date or date range (`2024-01-02` or `2024-01-02..2024-01-31`), when there was one.
    public var date: String?

    /// Creates a context.
    public init(endpoint: PolygonEndpoint, symbol: String? = nil, date: String? = nil) {
        self.endpoint = endpoint
        self.symbol = symbol
        self.date = date
    }

    /// `aggregates AAPL 2024-01-02..2024-01-31`.
    public var description: String {
        ([endpoint.rawValue] + [symbol, date].compactMap { $0 }).joined(separator: " ")
    }
}

/// A failed Polygon call. Descriptions name the endpoint and the symbol/date; they never contain
/// the API key, a request header or a query string.
public enum PolygonError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 404: the symbol (or resource) does not exist.
    case notFound(PolygonRequestContext, message: String)
    /// 401/403, or a body with `status` "NOT_AUTHORIZED": the key is missing, wrong, or not entitled.
    case notAuthorized(PolygonRequestContext, status: Int, message: String)
    /// A body with `status` "ERROR" (the API's own error report).
    case apiError(PolygonRequestContext, status: Int, message: String)
    /// Any other non-success status: a 4xx that is not retried, or a 429/5xx after the last attempt.
    case httpStatus(PolygonRequestContext, status: Int, attempts: Int, message: String)
    /// The answer is not what the API promises: not JSON (an HTML page), truncated JSON, a wrong
    /// type, a missing required field, or a `next_url` loop.
    case malformedResponse(PolygonRequestContext, status: Int, reason: String)
    /// The request never got an HTTP answer (timeout, connection failure), after `attempts` tries.
    case transport(PolygonRequestContext, HTTPClientError, attempts: Int)
    /// The call's arguments cannot make a valid request (such as an empty symbol).
    case invalidArgument(PolygonRequestContext, reason: String)

    /// The endpoint and symbol/date the error is about.
    public var context: PolygonRequestContext {
        switch self {
        case .notFound(let c, _), .notAuthorized(let c, _, _), .apiError(let c, _, _), .httpStatus(let c, _, _, _),
             .malformedResponse(let c, _, _), .transport(let c, _, _), .invalidArgument(let c, _):
            return c
        }
    }

    /// The HTTP status, when there was an answer.
    public var status: Int? {
        switch self {
        case .notFound: return 404
        case .notAuthorized(_, let s, _), .apiError(_, let s, _), .httpStatus(_, let s, _, _), .malformedResponse(_, let s, _):
            return s
        case .transport, .invalidArgument: return nil
        }
    }

    /// Whether a later attempt of the whole job may succeed: true for rate limiting (429),
    /// server errors (5xx), request timeouts (408), malformed answers (a proxy's error page,
    /// a truncated body) and network failures; false for what the same request gets again:
    /// a missing or unentitled API key (401/403), a symbol that does not exist, other 4xx
    /// answers and invalid arguments.
    public var isRetryable: Bool {
        switch self {
        case .notFound, .notAuthorized, .invalidArgument: return false
        case .apiError(_, let status, _), .httpStatus(_, let status, _, _): return status == 408 || status == 429 || status >= 500
        case .malformedResponse: return true
        case .transport(_, let error, _): return error.isRetryable
        }
    }

    /// A one-line description.
    public var description: String {
        switch self {
        case .notFound(let c, let m): return "Polygon \(c): not found (404): \(m)"
        case .notAuthorized(let c, let s, let m): return "Polygon \(c): not authorized (\(s)): \(m)"
        case .apiError(let c, let s, let m): return "Polygon \(c): API error (\(s)): \(m)"
        case .httpStatus(let c, let s, let a, let m):
            return "Polygon \(c): HTTP \(s) after \(a) attempt\(a == 1 ? "" : "s")\(m.isEmpty ? "" : ": \(m)")"
        case .malformedResponse(let c, let s, let r): return "Polygon \(c): malformed response (HTTP \(s)): \(r)"
        case .transport(let c, let e, let a): return "Polygon \(c): \(e) (after \(a) attempt\(a == 1 ? "" : "s"))"
        case .invalidArgument(let c, let r): return "Polygon \(c): invalid argument: \(r)"
        }
    }
}
