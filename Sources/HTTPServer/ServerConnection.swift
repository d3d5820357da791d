import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads requests from one socket and writes answers, on the connection's own thread.
final class ServerConnection {
    private let fd: Int32
    private let core: ServerCore
    private var buffer: [UInt8] = []

    init(fd: Int32, core: ServerCore) {
        self.fd = fd
        self.core = core
        var timeout = timeval()
        let idle = max(0.001, core.options.idleTimeout)
        timeout.tv_sec = Int(idle)
        timeout.tv_usec = .init((idle - Double(Int(idle))) * 1_000_000)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Serves requests until the peer closes, an error, or `Connection: close`.
    func run() {
        while true {
            switch readRequest() {
            case .closed:
                return
            case .bad(let status, let reason):
                _ = write(HTTPServerResponse.text(reason + "\n", status: status), keepAlive: false, isHead: false)
                return
            case .request(let request, let keepAlive):
                core.stats.withLock { $0.requests += 1 }
                let response = core.handler(request)
                if response.dropWithoutAnswer { return }
                let keep = keepAlive && !response.closeConnection
                if !write(response, keepAlive: keep, isHead: request.method == "HEAD") || !keep { return }
            }
        }
    }

    private enum ReadResult {
        case closed
        case bad(Int, String)
        case request(HTTPServerRequest, keepAlive: Bool)
    }

    private static let headTerminator: [UInt8] = [13, 10, 13, 10]

    private func readRequest() -> ReadResult {
        // Read until the end of the head.
        var searchFrom = 0
        var headEnd: Int?
        while headEnd == nil {
            if let found = Self.find(Self.headTerminator, in: buffer, from: searchFrom) {
                headEnd = found
                break
            }
            searchFrom = max(0, buffer.count - 3)
            if buffer.count > core.options.maxHeaderBytes { return .bad(431, "request head too large") }
            if !fill() {
                return buffer.isEmpty ? .closed : .bad(400, "incomplete request head")
            }
        }
        guard let end = headEnd else { return .closed }
        if end > core.options.maxHeaderBytes { return .bad(431, "request head too large") }
        let headBytes = Array(buffer[0..<end])
        buffer.removeFirst(end + 4)
        guard let head = String(bytes: headBytes, encoding: .utf8) ?? String(bytes: headBytes, encoding: .isoLatin1) else {
            return .bad(400, "unreadable request head")
        }
        var lines = head.components(separatedBy: "\r\n")
        // Tolerate empty lines before the request line (RFC 9112 section 2.2).
        while let first = lines.first, first.isEmpty { lines.removeFirst() }
        guard let requestLine = lines.first else { return .bad(400, "missing request line") }
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .bad(400, "malformed request line") }
        let method = String(parts[0])
        let target = String(parts[1])
        let version = String(parts[2])
        guard !method.isEmpty, method.allSatisfy({ $0.isLetter && $0.isASCII }) else { return .bad(400, "malformed method") }
        guard target.hasPrefix("/") || target == "*" else { return .bad(400, "malformed request target") }
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else { return .bad(400, "unsupported HTTP version") }

        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":"), line.first != " ", line.first != "\t" else {
                return .bad(400, "malformed header line")
            }
            let name = line[..<colon].lowercased()
            guard !name.isEmpty, !name.contains(" "), !name.contains("\t") else { return .bad(400, "malformed header name") }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if let existing = headers[name] {
                if name == "content-length" && existing != value { return .bad(400, "conflicting Content-Length") }
                headers[name] = name == "content-length" ? value : existing + ", " + value
            } else {
                headers[name] = value
            }
        }
        if version == "HTTP/1.1" && headers["host"] == nil { return .bad(400, "missing Host header") }
        if let encoding = headers["transfer-encoding"], encoding.lowercased() != "identity" {
            return .bad(501, "chunked request bodies are not supported; send Content-Length")
        }
        var length = 0
        if let text = headers["content-length"] {
            guard let value = Int(text), value >= 0 else { return .bad(400, "malformed Content-Length") }
            length = value
        }
        if length > core.options.maxBodyBytes { return .bad(413, "request body too large") }
        if length > 0, headers["expect"]?.lowercased() == "100-continue" {
            _ = sendAll(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
        }
        while buffer.count < length {
            if !fill() { return buffer.isEmpty && length == 0 ? .closed : .bad(400, "incomplete request body") }
        }
        let body = Data(buffer[0..<length])
        buffer.removeFirst(length)

        let connectionHeader = headers["connection"]?.lowercased() ?? ""
        let keepAlive: Bool
        if version == "HTTP/1.0" {
            keepAlive = connectionHeader.contains("keep-alive")
        } else {
            keepAlive = !connectionHeader.contains("close")
        }
        let request = HTTPServerRequest(method: method.uppercased(), target: target, headers: headers, body: body, version: version)
        return .request(request, keepAlive: keepAlive)
    }

    /// Reads more bytes into the buffer; false on EOF, error or idle timeout.
    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                buffer.append(contentsOf: chunk[0..<n])
                return true
            }
            if n < 0 && errno == EINTR { continue }
            return false
        }
    }

    private func write(_ response: HTTPServerResponse, keepAlive: Bool, isHead: Bool) -> Bool {
        var head = "HTTP/1.1 \(response.status) \(HTTPServerResponse.reasonPhrase(response.status))\r\n"
        var hasDate = false
        for header in response.headers {
            let name = header.name.lowercased()
            if name == "content-length" || name == "connection" || name == "transfer-encoding" { continue }
            if name == "date" { hasDate = true }
            // Refuse to let a handler split the response with CR/LF in a header.
            let value = header.value.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
            head += "\(header.name): \(value)\r\n"
        }
        if !hasDate { head += "Date: \(Self.httpDate())\r\n" }
        head += "Content-Length: \(response.body.count)\r\n"
        head += keepAlive ? "Connection: keep-alive\r\n" : "Connection: close\r\n"
        head += "\r\n"
        var bytes = Array(head.utf8)
        if !isHead { bytes.append(contentsOf: response.body) }
        return sendAll(bytes)
    }

    private func sendAll(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                #if os(Linux)
                return send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                #else
                return send(fd, raw.baseAddress! + offset, raw.count - offset, 0)
                #endif
            }
            if n > 0 {
                offset += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return false
            }
        }
        return true
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var i = max(0, from)
        while i + needle.count <= haystack.count {
            if haystack[i] == needle[0] && haystack[i + 1] == needle[1] && haystack[i + 2] == needle[2] && haystack[i + 3] == needle[3] {
                return i
            }
            i += 1
        }
        return nil
    }

    private static func httpDate() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var out = [CChar](repeating: 0, count: 64)
        let n = strftime(&out, out.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
        return String(decoding: out[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
