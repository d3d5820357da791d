import Foundation
import Toolkit

/// An HTTP request to send with `HTTPClient`.
public struct HTTPRequest: Sendable {
    /// The method, upper case (`GET`, `POST`, ...).
    public var method: String
    /// The absolute `http` or `https` URL.
    public var url: URL
    /// Request headers, in order. Never included in errors or descriptions.
    public var headers: [(name: String, value: String)]
    /// The request body, if any.
    public var body: Data?

    /// Creates a request.
    public init(method: String = "GET", url: URL, headers: [(name: String, value: String)] = [], body: Data? = nil) {
        self.method = method.uppercased()
        self.url = url
        self.headers = headers
        self.body = body
    }

    /// The URL without user info, query and fragment (`scheme://host:port/path`), safe to put in
    /// errors and logs (`Redactor.url`).
    public var redactedURL: String { Redactor.url(url) }
}

/// A complete HTTP response.
public struct HTTPResponse: Sendable {
    /// The status code of the final response (after any `100 Continue`).
    public var status: Int
    /// Response headers with lower-cased names; repeated headers are joined with ", ".
    public var headers: [String: String]
    /// The (decoded, if it was gzip-compressed) body.
    public var body: Data

    /// Creates a response (useful in tests).
    public init(status: Int, headers: [String: String] = [:], body: Data = Data()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The value of a header, looked up case-insensitively.
    public func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// A failed transfer. Descriptions name the method and the URL without its query; they never
/// contain request headers (so never an `Authorization` value).
public enum HTTPClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The connect timeout or the total timeout elapsed (curl code 28).
    case timeout(method: String, url: String, message: String)
    /// Could not connect: refused, or the host is unreachable (curl code 7).
    case connectionRefused(method: String, url: String, message: String)
    /// The host name could not be resolved (curl code 6).
    case couldNotResolveHost(method: String, url: String, message: String)
    /// The response body exceeded the configured maximum.
    case responseTooLarge(method: String, url: String, limit: Int)
    /// The request was cancelled (its task was cancelled, or the client shut down).
    case cancelled(method: String, url: String)
    /// The URL is not an absolute http(s) URL.
    case invalidURL(String)
    /// Any other libcurl failure, with curl's code and message.
    case curl(code: Int, method: String, url: String, message: String)

    /// libcurl's result code, when the failure came from libcurl.
    public var curlCode: Int? {
        switch self {
        case .timeout: return 28
        case .connectionRefused: return 7
        case .couldNotResolveHost: return 6
        case .curl(let code, _, _, _): return code
        case .responseTooLarge: return 23
        case .cancelled: return 42
        case .invalidURL: return nil
        }
    }

    /// True for failures worth retrying (timeouts, refused connections, dropped transfers).
    public var isTransient: Bool {
        switch self {
        case .timeout, .connectionRefused: return true
        case .curl(let code, _, _, _):
            // 52 empty reply, 55 send error, 56 receive error, 18 partial file, 16 HTTP/2 error, 92 HTTP/2 stream
            return [16, 18, 52, 55, 56, 92].contains(code)
        default: return false
        }
    }

    /// Whether a later attempt of the whole job may succeed: false for a URL that is not valid
    /// and a response larger than the limit (the same request fails the same way), true for the
    /// rest (timeouts, refused connections, name resolution, dropped transfers, cancellation).
    /// `isTransient` is the narrower test for retrying the request at once.
    public var isRetryable: Bool {
        switch self {
        case .invalidURL, .responseTooLarge: return false
        case .curl(let code, _, _, _): return ![1, 3].contains(code)  // unsupported protocol, malformed URL
        case .timeout, .connectionRefused, .couldNotResolveHost, .cancelled: return true
        }
    }

    /// A one-line description without headers or query strings.
    public var description: String {
        switch self {
        case .timeout(let method, let url, let message): return "HTTP \(method) \(url) timed out: \(message)"
        case .connectionRefused(let method, let url, let message): return "HTTP \(method) \(url): connection failed: \(message)"
        case .couldNotResolveHost(let method, let url, let message): return "HTTP \(method) \(url): could not resolve host: \(message)"
        case .responseTooLarge(let method, let url, let limit): return "HTTP \(method) \(url): response larger than \(limit) bytes"
        case .cancelled(let method, let url): return "HTTP \(method) \(url): cancelled"
        case .invalidURL(let url): return "invalid URL \(url)"
        case .curl(let code, let method, let url, let message): return "HTTP \(method) \(url): curl error \(code): \(message)"
        }
    }
}
