import Foundation

/// Parses requests out of the bytes one connection has received so far, incrementally: the
/// event loop feeds it what `recv` returned and asks for the next request.
struct RequestParser {
    /// The parsed head of a request whose body is still arriving.
    struct Head {
        var method: String
        var target: String
        var version: String
        var headers: [String: String]
        var bodyLength: Int
        var keepAlive: Bool
    }

    enum Outcome {
        /// More bytes are needed. `headComplete` says whether the head is in (the body deadline applies).
        case needMore(headComplete: Bool)
        /// The request is malformed or over a limit: answer `status` and close.
        case bad(Int, String)
        /// A complete request.
        case request(HTTPServerRequest, keepAlive: Bool)
    }

    private(set) var buffer: [UInt8] = []
    private var head: Head?
    private var searchFrom = 0
    /// Set when `100 Continue` must be sent for the current request (read and cleared by the loop).
    var wantsContinue = false

    /// True when no byte of a next request has arrived.
    var isEmpty: Bool { buffer.isEmpty && head == nil }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        buffer.append(contentsOf: bytes)
    }

    private static let terminator: [UInt8] = [13, 10, 13, 10]

    /// The next request, if its bytes are all in.
    mutating func next(maxHeaderBytes: Int, bodyLimit: (String, String) -> Int) -> Outcome {
        if head == nil {
            guard let end = Self.find(in: buffer, from: searchFrom) else {
                searchFrom = max(0, buffer.count - 3)
                return buffer.count > maxHeaderBytes ? .bad(431, "request head too large") : .needMore(headComplete: false)
            }
            if end > maxHeaderBytes { return .bad(431, "request head too large") }
            let headBytes = Array(buffer[0..<end])
            buffer.removeFirst(end + 4)
            searchFrom = 0
            switch Self.parseHead(headBytes) {
            case .failure(let failure): return .bad(failure.status, failure.reason)
            case .success(let parsed):
                let path = HTTPServerRequest.decodedPath(parsed.target)
                if parsed.bodyLength > bodyLimit(parsed.method, path) { return .bad(413, "request body too large for \(parsed.method) \(path)") }
                head = parsed
                if parsed.bodyLength > 0, parsed.headers["expect"]?.lowercased() == "100-continue", buffer.count < parsed.bodyLength {
                    wantsContinue = true
                }
            }
        }
        guard let current = head else { return .needMore(headComplete: false) }
        guard buffer.count >= current.bodyLength else { return .needMore(headComplete: true) }
        let body = Data(buffer[0..<current.bodyLength])
        buffer.removeFirst(current.bodyLength)
        head = nil
        let request = HTTPServerRequest(method: current.method.uppercased(), target: current.target, headers: current.headers,
                                        body: body, version: current.version)
        return .request(request, keepAlive: current.keepAlive)
    }

    struct Failure: Error {
        var status: Int
        var reason: String
    }

    static func parseHead(_ bytes: [UInt8]) -> Result<Head, Failure> {
        guard let text = String(bytes: bytes, encoding: .utf8) ?? String(bytes: bytes, encoding: .isoLatin1) else {
            return .failure(Failure(status: 400, reason: "unreadable request head"))
        }
        var lines = text.components(separatedBy: "\r\n")
        // Tolerate empty lines before the request line (RFC 9112 section 2.2).
        while let first = lines.first, first.isEmpty { lines.removeFirst() }
        guard let requestLine = lines.first else { return .failure(Failure(status: 400, reason: "missing request line")) }
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failure(Failure(status: 400, reason: "malformed request line")) }
        let method = String(parts[0]), target = String(parts[1]), version = String(parts[2])
        guard !method.isEmpty, method.allSatisfy({ $0.isLetter && $0.isASCII }) else { return .failure(Failure(status: 400, reason: "malformed method")) }
        guard target.hasPrefix("/") || target == "*" else { return .failure(Failure(status: 400, reason: "malformed request target")) }
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else { return .failure(Failure(status: 400, reason: "unsupported HTTP version")) }

        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":"), line.first != " ", line.first != "\t" else {
                return .failure(Failure(status: 400, reason: "malformed header line"))
            }
            let name = line[..<colon].lowercased()
            guard !name.isEmpty, !name.contains(" "), !name.contains("\t") else { return .failure(Failure(status: 400, reason: "malformed header name")) }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if let existing = headers[name] {
                if name == "content-length" && existing != value { return .failure(Failure(status: 400, reason: "conflicting Content-Length")) }
                headers[name] = name == "content-length" ? value : existing + ", " + value
            } else {
                headers[name] = value
            }
        }
        if version == "HTTP/1.1" && headers["host"] == nil { return .failure(Failure(status: 400, reason: "missing Host header")) }
        if let encoding = headers["transfer-encoding"], encoding.lowercased() != "identity" {
            return .failure(Failure(status: 501, reason: "chunked request bodies are not supported; send Content-Length"))
        }
        var length = 0
        if let text = headers["content-length"] {
            guard let value = Int(text), value >= 0 else { return .failure(Failure(status: 400, reason: "malformed Content-Length")) }
            length = value
        }
        let connection = headers["connection"]?.lowercased() ?? ""
        let keepAlive = version == "HTTP/1.0" ? connection.contains("keep-alive") : !connection.contains("close")
        return .success(Head(method: method, target: target, version: version, headers: headers, bodyLength: length, keepAlive: keepAlive))
    }

    private static func find(in haystack: [UInt8], from: Int) -> Int? {
        guard haystack.count >= 4 else { return nil }
        var i = max(0, from)
        while i + 4 <= haystack.count {
            if haystack[i] == 13 && haystack[i + 1] == 10 && haystack[i + 2] == 13 && haystack[i + 3] == 10 { return i }
            i += 1
        }
        return nil
    }
}
