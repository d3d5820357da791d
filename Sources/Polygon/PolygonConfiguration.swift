import Foundation
import Toolkit

/// How failed requests are retried: 429 and 5xx answers and transient transport failures
/// (timeouts, refused or dropped connections) are retried with exponential backoff and jitter;
/// a `Retry-After` header (seconds) replaces the computed delay.
public struct PolygonRetryPolicy: Sendable, Equatable {
    /// Attempts per request, the first included (1 = never retry). Default 5.
    public var maxAttempts: Int
    /// Delay before the first retry, in seconds; it doubles each retry. Default 0.5.
    public var baseDelay: TimeInterval
    /// Largest computed backoff, in seconds. Default 30.
    public var maxDelay: TimeInterval
    /// Largest `Retry-After` honoured, in seconds (a longer one is cut to this). Default 60.
    public var maxRetryAfter: TimeInterval
    /// When true (default) each computed delay is drawn uniformly from [delay/2, delay].
    public var jitter: Bool

    /// Creates a policy; every value has a default.
    public init(maxAttempts: Int = 5, baseDelay: TimeInterval = 0.5, maxDelay: TimeInterval = 30,
                maxRetryAfter: TimeInterval = 60, jitter: Bool = true) {
        // Delays are kept within [0, 1 day] (NaN counts as 0) so sleeping never overflows.
        func clamp(_ value: TimeInterval) -> TimeInterval { value.isNaN ? 0 : min(86_400, max(0, value)) }
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = clamp(baseDelay)
        self.maxDelay = clamp(maxDelay)
        self.maxRetryAfter = clamp(maxRetryAfter)
        self.jitter = jitter
    }

    /// The backoff before retry number `retry` (1 = first retry), before jitter.
    public func backoff(retry: Int) -> TimeInterval {
        let exponent = Double(min(max(retry - 1, 0), 60))
        return min(maxDelay, baseDelay * pow(2, exponent))
    }
}

/// Settings of a `PolygonClient`. The API key is never printed: `description`, `debugDescription`
/// and reflection (`dump`) leave it out.
public struct PolygonConfiguration: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The public API.
    public static let defaultBaseURL = URL(string: "https://api.polygon.io")!

    /// Where requests go (`POLYGON_BASE_URL`; default `https://api.polygon.io`). May carry a path
    /// prefix, such as a proxy's `http://proxy:8080/polygon`.
    public var baseURL: URL
    /// The API key, sent only as `Authorization: Bearer …`. Nil sends no Authorization header.
    public var apiKey: String?
    /// Requests started per second, across every task sharing the client's limiter. Default 20.
    public var requestsPerSecond: Double
    /// Requests in flight at once, across every task sharing the client's limiter. Default 8.
    public var maxConcurrentRequests: Int
    /// Retry settings.
    public var retry: PolygonRetryPolicy
    /// Seconds to establish a connection. Default 10.
    public var connectTimeout: TimeInterval
    /// Seconds for one whole request. Default 60.
    public var requestTimeout: TimeInterval
    /// `limit` sent to the aggregates endpoint. Default 50000 (Polygon's maximum).
    public var aggregatesLimit: Int
    /// `limit` sent to the ticker list. Default 1000 (Polygon's maximum).
    public var tickerListLimit: Int
    /// Pages followed through `next_url` before giving up. Default 10000.
    public var maxPages: Int

    /// Creates a configuration; every value but the key has a default.
    public init(baseURL: URL = PolygonConfiguration.defaultBaseURL, apiKey: String? = nil, requestsPerSecond: Double = 20,
                maxConcurrentRequests: Int = 8, retry: PolygonRetryPolicy = PolygonRetryPolicy(), connectTimeout: TimeInterval = 10,
                requestTimeout: TimeInterval = 60, aggregatesLimit: Int = 50_000, tickerListLimit: Int = 1000, maxPages: Int = 10_000) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.requestsPerSecond = requestsPerSecond
        self.maxConcurrentRequests = max(1, maxConcurrentRequests)
        self.retry = retry
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        self.aggregatesLimit = aggregatesLimit
        self.tickerListLimit = tickerListLimit
        self.maxPages = max(1, maxPages)
    }

    /// Reads `POLYGON_API_KEY` (else `MASSIVE_API_KEY`; empty counts as unset) and
    /// `POLYGON_BASE_URL` (default the public API). Everything else keeps its default.
    /// Throws `PolygonConfigurationError.invalidBaseURL` for a base URL that is not absolute http(s).
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> PolygonConfiguration {
        var configuration = PolygonConfiguration()
        try configuration.applyEnvironment(environment)
        return configuration
    }

    /// Takes the API key from `POLYGON_API_KEY` (else `MASSIVE_API_KEY`; empty counts as unset;
    /// there is no config key for it) and the base URL from `POLYGON_BASE_URL` when set (it wins
    /// over the config file). Throws `PolygonConfigurationError.invalidBaseURL` for a base URL
    /// that is not absolute http(s).
    public mutating func applyEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        apiKey = [environment["POLYGON_API_KEY"], environment["MASSIVE_API_KEY"]]
            .compactMap { $0?.trimmingCharacters(in: .whitespacesAndNewlines) }
            .first { !$0.isEmpty }
        if let raw = environment["POLYGON_BASE_URL"]?.trimmingCharacters(in: .whitespacesAndNewlines), !raw.isEmpty {
            baseURL = try Self.validatedBaseURL(raw)
        }
    }

    /// Checks that `text` is an absolute http(s) URL without query, fragment or credentials.
    public static func validatedBaseURL(_ text: String) throws -> URL {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty,
              components.query == nil, components.fragment == nil, components.user == nil, components.password == nil,
              let url = components.url else {
            throw PolygonConfigurationError.invalidBaseURL(variable: "POLYGON_BASE_URL", value: Redactor.withoutQuery(text))
        }
        return url
    }

    /// The settings, with the key shown only as present or absent.
    public var description: String {
        "PolygonConfiguration(baseURL: \(baseURL.absoluteString), apiKey: \(apiKey == nil ? "none" : Redactor.placeholder), "
            + "requestsPerSecond: \(requestsPerSecond), maxConcurrentRequests: \(maxConcurrentRequests), "
            + "retry: \(retry.maxAttempts) attempts \(retry.baseDelay)s..\(retry.maxDelay)s, "
            + "connectTimeout: \(connectTimeout)s, requestTimeout: \(requestTimeout)s)"
    }

    /// Same as `description`.
    public var debugDescription: String { description }

    /// Reflection without the key.
    public var customMirror: Mirror {
        Mirror(self, children: [
            "baseURL": baseURL.absoluteString, "apiKey": apiKey == nil ? "none" : Redactor.placeholder,
            "requestsPerSecond": requestsPerSecond, "maxConcurrentRequests": maxConcurrentRequests,
        ], displayStyle: .struct)
    }
}

extension PolygonConfiguration: Decodable {
    /// The client's keys of the config file's `polygon:` section.
    enum CodingKeys: String, CodingKey {
        case baseURL = "base_url", requestsPerSecond = "requests_per_second", maxConcurrentRequests = "max_concurrent_requests"
        case maxAttempts = "max_attempts", retryBaseSeconds = "retry_base_seconds", retryMaxSeconds = "retry_max_seconds"
        case connectTimeout = "connect_timeout_seconds", requestTimeout = "request_timeout_seconds"
    }

    /// Reads the client's keys of the `polygon:` section (absent keys keep their defaults). The
    /// API key is never read from the file, and `POLYGON_BASE_URL` wins over `base_url`: see
    /// `applyEnvironment`.
    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let text = try c.decodeIfPresent(String.self, forKey: .baseURL) {
            guard let url = URL(string: text), url.scheme == "http" || url.scheme == "https" else {
                throw c.invalid(.baseURL, "expected an http(s) URL, got \(text)")
            }
            baseURL = url
        }
        requestsPerSecond = try c.setting(.requestsPerSecond, requestsPerSecond, min: 0)
        maxConcurrentRequests = try c.setting(.maxConcurrentRequests, maxConcurrentRequests, min: 1)
        retry.maxAttempts = try c.setting(.maxAttempts, retry.maxAttempts, min: 1)
        retry.baseDelay = try c.setting(.retryBaseSeconds, retry.baseDelay, min: 0)
        retry.maxDelay = try c.setting(.retryMaxSeconds, retry.maxDelay, min: 0)
        connectTimeout = try c.setting(.connectTimeout, connectTimeout, min: 0.1)
        requestTimeout = try c.setting(.requestTimeout, requestTimeout, min: 0.1)
    }
}

/// A configuration value that cannot be used.
public enum PolygonConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The base URL is not an absolute http(s) URL without query.
    case invalidBaseURL(variable: String, value: String)

    /// A one-line description.
    public var description: String {
        switch self {
        case .invalidBaseURL(let variable, let value):
            return "\(variable): '\(value)' is not an absolute http(s) URL without query"
        }
    }
}
