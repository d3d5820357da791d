import Foundation

/// One parsed HTTP request, as the server's handler sees it.
public struct HTTPServerRequest: Sendable {
    /// The method, upper case.
    public var method: String
    /// The request target as sent (path and query, still percent-encoded).
    public var target: String
    /// The percent-decoded path, without the query.
    public var path: String
    /// The query string as sent (without `?`), or nil when there was none.
    public var rawQuery: String?
    /// Query items, percent-decoded, in order (`+` is kept as is, as in URLs).
    public var queryItems: [URLQueryItem]
    /// Headers with lower-cased names; repeated headers are joined with ", ".
    public var headers: [String: String]
    /// The body (`Content-Length` bytes; empty when there is none).
    public var body: Data
    /// The HTTP version from the request line, such as `HTTP/1.1`.
    public var version: String

    /// Creates a request (useful to call handlers directly in tests).
    public init(method: String, target: String, headers: [String: String] = [:], body: Data = Data(), version: String = "HTTP/1.1") {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.version = version
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        self.path = Self.decodedPath(target)
        if parts.count > 1 {
            let query = String(parts[1])
            self.rawQuery = query
            var components = URLComponents()
            components.percentEncodedQuery = query.isEmpty ? nil : query
            self.queryItems = components.queryItems ?? HTTPServerRequest.looseQueryItems(query)
        } else {
            self.rawQuery = nil
            self.queryItems = []
        }
    }

    /// The percent-decoded path of a request target, without the query.
    static func decodedPath(_ target: String) -> String {
        let rawPath = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? "/"
        return rawPath.removingPercentEncoding ?? rawPath
    }

    /// The first value of a query item, or nil.
    public func query(_ name: String) -> String? {
        queryItems.first { $0.name == name }?.value
    }

    /// The value of a header, looked up case-insensitively.
    public func header(_ name: String) -> String? { headers[name.lowercased()] }

    /// Parses `a=b&c=d` when URLComponents refuses the string (bad percent escapes).
    private static func looseQueryItems(_ query: String) -> [URLQueryItem] {
        query.split(separator: "&").map { pair in
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(kv[0])
            let value = kv.count > 1 ? String(kv[1]) : nil
            return URLQueryItem(name: name.removingPercentEncoding ?? name, value: value.map { $0.removingPercentEncoding ?? $0 })
        }
    }
}

/// The handler's answer. The server adds `Content-Length`, `Connection` and `Date`.
public struct HTTPServerResponse: Sendable {
    /// The status code.
    public var status: Int
    /// Headers to send, in order.
    public var headers: [(name: String, value: String)]
    /// The body.
    public var body: Data
    /// When true the server closes the connection after this response.
    public var closeConnection: Bool
    /// When true the server sends nothing and closes the connection (to simulate a dropped
    /// connection in tests).
    public var dropWithoutAnswer = false

    /// Creates a response.
    public init(status: Int, headers: [(name: String, value: String)] = [], body: Data = Data(), closeConnection: Bool = false) {
        self.status = status
        self.headers = headers
        self.body = body
        self.closeConnection = closeConnection
    }

    /// No answer at all: the connection is closed (the client sees an empty reply).
    public static var dropConnection: HTTPServerResponse {
        var response = HTTPServerResponse(status: 0, closeConnection: true)
        response.dropWithoutAnswer = true
        return response
    }

    /// A response with a UTF-8 text body.
    public static func text(_ text: String, status: Int = 200, contentType: String = "text/plain; charset=utf-8") -> HTTPServerResponse {
        HTTPServerResponse(status: status, headers: [("Content-Type", contentType)], body: Data(text.utf8))
    }

    /// A response with a JSON body given as bytes.
    public static func json(_ body: Data, status: Int = 200) -> HTTPServerResponse {
        HTTPServerResponse(status: status, headers: [("Content-Type", "application/json")], body: body)
    }

    /// The standard reason phrase for a status code.
    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        default: return "Status \(status)"
        }
    }
}

/// Why the server could not start.
public enum HTTPServerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The host is not a numeric IPv4 or IPv6 address or resolvable name.
    case invalidAddress(String)
    /// A socket call failed, with its name and errno.
    case socket(call: String, errno: Int32, host: String, port: UInt16)

    /// A one-line description.
    public var description: String {
        switch self {
        case .invalidAddress(let host): return "cannot listen on \(host): not an address"
        case .socket(let call, let code, let host, let port):
            return "\(call) failed for \(host):\(port): \(String(cString: strerror(code))) (errno \(code))"
        }
    }
}
