import ChildProcess
import Foundation
import HTTPClient
import HTTPServer
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class HTTPTests: XCTestCase {
    private func echoServer() throws -> HTTPServer {
        try HTTPServer.start { request in
            if request.path == "/sleep" {
                Thread.sleep(forTimeInterval: Double(request.query("ms") ?? "0")! / 1000)
                return .text("slept")
            }
            var lines = ["method=\(request.method)", "path=\(request.path)"]
            for item in request.queryItems { lines.append("q:\(item.name)=\(item.value ?? "<nil>")") }
            for (name, value) in request.headers.sorted(by: { $0.key < $1.key }) where name.hasPrefix("x-") {
                lines.append("h:\(name)=\(value)")
            }
            lines.append("body=\(String(decoding: request.body, as: UTF8.self))")
            return HTTPServerResponse(status: request.path == "/missing" ? 404 : 200,
                                      headers: [("Content-Type", "text/plain"), ("X-Reply", "yes"), ("X-Multi", "a"), ("X-Multi", "b")],
                                      body: Data(lines.joined(separator: "\n").utf8))
        }
    }

    func testGetWithQueryHeadersAndLowercasedResponseHeaders() async throws {
        let server = try echoServer()
        defer { server.stop() }
        let client = HTTPClient()
        let url = URL(string: "\(server.baseURL)/v1/things%20here?a=1&b=two%20words&flag")!
        let response = try await client.send(HTTPRequest(url: url, headers: [("X-Custom", "Value")]))
        XCTAssertEqual(response.status, 200)
        let text = String(decoding: response.body, as: UTF8.self)
        XCTAssertEqual(text, "method=GET\npath=/v1/things here\nq:a=1\nq:b=two words\nq:flag=<nil>\nh:x-custom=Value\nbody=")
        XCTAssertEqual(response.headers["x-reply"], "yes")
        XCTAssertEqual(response.headers["x-multi"], "a, b")
        XCTAssertEqual(response.header("Content-Type"), "text/plain")
        XCTAssertNil(response.headers["X-Reply"])
    }

    func testPostBodyAndStatusPassThrough() async throws {
        let server = try echoServer()
        defer { server.stop() }
        let client = HTTPClient()
        let big = String(repeating: "x", count: 200_000)
        let post = try await client.send(HTTPRequest(method: "POST", url: URL(string: "\(server.baseURL)/hook")!,
                                                     headers: [("Content-Type", "application/json")], body: Data(big.utf8)))
        XCTAssertEqual(post.status, 200)
        XCTAssertTrue(String(decoding: post.body, as: UTF8.self).hasSuffix("body=" + big))
        let put = try await client.send(HTTPRequest(method: "PUT", url: URL(string: "\(server.baseURL)/x")!, body: Data("{}".utf8)))
        XCTAssertTrue(String(decoding: put.body, as: UTF8.self).hasPrefix("method=PUT"))
        XCTAssertTrue(String(decoding: put.body, as: UTF8.self).hasSuffix("body={}"))
        let missing = try await client.send(HTTPRequest(url: URL(string: "\(server.baseURL)/missing")!))
        XCTAssertEqual(missing.status, 404)
    }

    func testGzipBodiesAreDecodedTransparently() async throws {
        let text = String(repeating: "closing bell ", count: 2000)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-gzip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let plain = folder.appendingPathComponent("plain.txt"), packed = folder.appendingPathComponent("plain.txt.gz")
        try Data(text.utf8).write(to: plain)
        XCTAssertEqual(try ChildProcess.spawn("gzip", ["-c", plain.path], outputPath: packed.path).wait(), 0)
        let compressed = try Data(contentsOf: packed)
        XCTAssertLessThan(compressed.count, text.utf8.count / 10)
        let acceptEncoding = LockedBox<String?>(nil)
        let server = try HTTPServer.start { request in
            acceptEncoding.set(request.header("accept-encoding"))
            return HTTPServerResponse(status: 200, headers: [("Content-Encoding", "gzip")], body: compressed)
        }
        defer { server.stop() }
        let response = try await HTTPClient().send(HTTPRequest(url: URL(string: "\(server.baseURL)/z")!))
        XCTAssertEqual(String(decoding: response.body, as: UTF8.self), text)
        XCTAssertTrue(acceptEncoding.get()?.contains("gzip") ?? false, "\(String(describing: acceptEncoding.get()))")
    }

    func testSequentialRequestsReuseOneConnection() async throws {
        let server = try echoServer()
        defer { server.stop() }
        let client = HTTPClient()
        for i in 0..<5 {
            let response = try await client.send(HTTPRequest(url: URL(string: "\(server.baseURL)/n?i=\(i)")!))
            XCTAssertEqual(response.status, 200)
        }
        XCTAssertEqual(server.requestsHandled, 5)
        XCTAssertEqual(server.connectionsAccepted, 1, "keep-alive connection was not reused")
    }

    func testConcurrentRequestsAllSucceed() async throws {
        let server = try echoServer()
        defer { server.stop() }
        let client = HTTPClient(configuration: HTTPClientConfiguration(maxConcurrentTransfers: 4))
        let base = server.baseURL
        let bodies = try await withThrowingTaskGroup(of: String.self) { group in
            for i in 0..<40 {
                group.addTask {
                    let r = try await client.send(HTTPRequest(url: URL(string: "\(base)/c?i=\(i)")!))
                    return String(decoding: r.body, as: UTF8.self)
                }
            }
            var all: [String] = []
            for try await body in group { all.append(body) }
            return all
        }
        XCTAssertEqual(Set(bodies).count, 40)
        XCTAssertLessThanOrEqual(server.connectionsAccepted, 4)
    }

    func testTimeoutIsTypedAndOmitsHeaders() async throws {
        let server = try echoServer()
        defer { server.stop() }
        let client = HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: 1, timeout: 0.2))
        do {
            _ = try await client.send(HTTPRequest(url: URL(string: "\(server.baseURL)/sleep?ms=1500&secret=q")!,
                                                  headers: [("Authorization", "Bearer SECRET-TOKEN")]))
            XCTFail("expected a timeout")
        } catch let error as HTTPClientError {
            guard case .timeout(let method, let url, _) = error else { return XCTFail("got \(error)") }
            XCTAssertEqual(method, "GET")
            XCTAssertEqual(url, "\(server.baseURL)/sleep")
            XCTAssertEqual(error.curlCode, 28)
            XCTAssertTrue(error.isTransient)
            XCTAssertFalse("\(error)".contains("SECRET-TOKEN"))
            XCTAssertFalse("\(error)".contains("secret=q"))
        }
    }

    func testConnectionRefused() async throws {
        let server = try echoServer()
        let base = server.baseURL
        server.stop()
        let client = HTTPClient()
        do {
            _ = try await client.send(HTTPRequest(url: URL(string: "\(base)/x")!, headers: [("Authorization", "Bearer SECRET-TOKEN")]))
            XCTFail("expected connection failure")
        } catch let error as HTTPClientError {
            guard case .connectionRefused = error else { return XCTFail("got \(error)") }
            XCTAssertEqual(error.curlCode, 7)
            XCTAssertFalse(error.description.contains("SECRET-TOKEN"))
        }
    }

    func testInvalidURLAndResponseTooLarge() async throws {
        let client = HTTPClient(configuration: HTTPClientConfiguration(maxResponseBytes: 10))
        do {
            _ = try await client.send(HTTPRequest(url: URL(string: "ftp://example.com/x")!))
            XCTFail("expected invalidURL")
        } catch let error as HTTPClientError {
            XCTAssertEqual(error, .invalidURL("ftp://example.com/x"))
        }
        let server = try echoServer()
        defer { server.stop() }
        do {
            _ = try await client.send(HTTPRequest(url: URL(string: "\(server.baseURL)/large")!))
            XCTFail("expected responseTooLarge")
        } catch let error as HTTPClientError {
            guard case .responseTooLarge(_, _, let limit) = error else { return XCTFail("got \(error)") }
            XCTAssertEqual(limit, 10)
        }
    }

    func testCancellationAbortsTransfer() async throws {
        let server = try echoServer()
        defer { server.stop() }
        let client = HTTPClient()
        let url = URL(string: "\(server.baseURL)/sleep?ms=3000")!
        let task = Task { try await client.send(HTTPRequest(url: url)) }
        while server.requestsHandled == 0 { try await Task.sleep(nanoseconds: 5_000_000) }
        task.cancel()
        do {
            _ = try await task.value
            XCTFail("expected cancellation")
        } catch let error as HTTPClientError {
            guard case .cancelled = error else { return XCTFail("got \(error)") }
        }
    }

    /// A loopback listener that accepts one connection and never answers: only cancellation can
    /// end a transfer to it before the (60 s) request timeout, so a `.cancelled` error (not
    /// `.timeout`) shows the transfer was aborted by the task's cancellation.
    func testCancellationAbortsTransferToSilentServer() async throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(listener, 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(listener, raw, length) == 0 && listen(listener, 1) == 0 && getsockname(listener, raw, &length) == 0
            }
        }
        XCTAssertTrue(bound)
        let port = UInt16(bigEndian: address.sin_port)
        let accepted = LockedBox<Int32>(-1)
        let acceptor = Thread { accepted.set(accept(listener, nil, nil)) }
        acceptor.start()
        defer { if accepted.get() >= 0 { close(accepted.get()) } }

        let client = HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: 60, timeout: 60))
        let url = URL(string: "http://127.0.0.1:\(port)/v2/aggs/grouped")!
        let task = Task { try await client.send(HTTPRequest(url: url)) }
        while accepted.get() < 0 { try await Task.sleep(nanoseconds: 5_000_000) }
        task.cancel()
        do {
            _ = try await task.value
            XCTFail("expected cancellation")
        } catch let error as HTTPClientError {
            guard case .cancelled(let method, _) = error else { return XCTFail("got \(error)") }
            XCTAssertEqual(method, "GET")
        }
    }

    // MARK: - Server robustness on raw sockets

    private func raw(_ port: UInt16, _ text: String) -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return "<connect failed>" }
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        shutdown(fd, Int32(SHUT_WR))
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }

    func testBadRequestsGet400AndServerKeepsServing() async throws {
        let server = try echoServer()
        defer { server.stop() }
        XCTAssertTrue(raw(server.port, "garbage\r\n\r\n").hasPrefix("HTTP/1.1 400 "))
        XCTAssertTrue(raw(server.port, "GET /x HTTP/1.1\r\nHost: a\r\nbroken header\r\n\r\n").hasPrefix("HTTP/1.1 400 "))
        XCTAssertTrue(raw(server.port, "GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: nope\r\n\r\n").hasPrefix("HTTP/1.1 400 "))
        XCTAssertTrue(raw(server.port, "GET /x HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 400 "), "missing Host")
        XCTAssertTrue(raw(server.port, "GET /x HTTP/9.9\r\nHost: a\r\n\r\n").hasPrefix("HTTP/1.1 400 "))
        XCTAssertTrue(raw(server.port, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc").hasPrefix("HTTP/1.1 400 "))
        XCTAssertTrue(raw(server.port, "GET /x HTTP/1.1\r\nHost: a\r\nX-Big: \(String(repeating: "a", count: 70_000))\r\n\r\n").hasPrefix("HTTP/1.1 431 "))
        XCTAssertTrue(raw(server.port, "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").hasPrefix("HTTP/1.1 501 "))
        // Two pipelined requests on one connection, the second closing it.
        let two = raw(server.port, "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        XCTAssertEqual(two.components(separatedBy: "HTTP/1.1 200 OK").count, 3)
        XCTAssertTrue(two.contains("path=/a") && two.contains("path=/b"))
        let head = raw(server.port, "HEAD /a HTTP/1.0\r\n\r\n")
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 200 OK"))
        XCTAssertTrue(head.hasSuffix("\r\n\r\n"), "HEAD answer must have no body")
        let client = HTTPClient()
        let ok = try await client.send(HTTPRequest(url: URL(string: "\(server.baseURL)/after")!))
        XCTAssertEqual(ok.status, 200)
    }

    func testStopClosesIdleConnectionsAndFreesPort() async throws {
        let server = try echoServer()
        let client = HTTPClient()
        _ = try await client.send(HTTPRequest(url: URL(string: "\(server.baseURL)/x")!))
        server.stop()
        server.stop()
        let again = try HTTPServer.start(port: server.port) { _ in .text("second") }
        defer { again.stop() }
        let response = try await client.send(HTTPRequest(url: URL(string: "\(again.baseURL)/x")!))
        XCTAssertEqual(String(decoding: response.body, as: UTF8.self), "second")
    }

    func testInvalidListenAddress() {
        XCTAssertThrowsError(try HTTPServer.start(host: "not an address") { _ in .text("") }) { error in
            XCTAssertEqual(error as? HTTPServerError, .invalidAddress("not an address"))
        }
    }
}

final class LockedBox<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func get() -> Value { lock.withLock { value } }
    func set(_ newValue: Value) { lock.withLock { value = newValue } }
}
