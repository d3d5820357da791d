import Foundation
import HTTPClient
import HTTPServer
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The server's defences against hostile or broken clients: head deadline, connection cap,
/// per-route body limits, close-on-exec sockets, bounded threads.
final class ServerLimitTests: XCTestCase {
    private let client = HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: 5, timeout: 10))

    private func get(_ server: HTTPServer, _ path: String) async throws -> Int {
        try await client.send(HTTPRequest(url: URL(string: "\(server.baseURL)\(path)")!)).status
    }

    /// A client that sends its head one byte at a time gets 408 and is closed once the whole
    /// head has taken longer than the deadline, however steadily it keeps sending.
    func testSlowHeadIsCutOffAtTheHeadDeadline() async throws {
        let server = try HTTPServer.start(options: HTTPServerOptions(headerTimeout: 0.5)) { _ in .text("ok") }
        defer { server.stop() }
        let slow = try XCTUnwrap(LoopbackSocket(port: server.port))
        XCTAssertTrue(slow.send("GET /x HTTP/1.1\r\nHost: a\r\n"))
        var answer = ""
        for _ in 0..<200 where slow.send("X") {
            let part = slow.readAll(seconds: 0.05)
            answer += part
            if !part.isEmpty || slow.isClosedByPeer { break }
        }
        answer += slow.readAll(seconds: 1)
        XCTAssertTrue(answer.hasPrefix("HTTP/1.1 408 "), "got: \(answer)")
        XCTAssertTrue(slow.isClosedByPeer)
        XCTAssertEqual(server.statistics.timedOut, 1)
        // A connection that never sends anything is closed at the same deadline.
        let silent = try XCTUnwrap(LoopbackSocket(port: server.port))
        let closed = try await eventually(timeout: 20) { silent.isClosedByPeer }
        XCTAssertTrue(closed)
        let ok = try await get(server, "/after")
        XCTAssertEqual(ok, 200)
    }

    /// Past the cap, the connection that has waited longest for its request is closed to make
    /// room: a flood of idle clients cannot lock a health check out, and the open count stays
    /// at the cap.
    func testConnectionCapEvictsTheLongestWaiter() async throws {
        let server = try HTTPServer.start(options: HTTPServerOptions(maxConnections: 8)) { _ in .text("ok") }
        defer { server.stop() }
        XCTAssertEqual(server.maxConnections, 8)
        var idle: [LoopbackSocket] = []
        for _ in 0..<20 { idle.append(try XCTUnwrap(LoopbackSocket(port: server.port))) }
        let settled = try await eventually(timeout: 20) { server.connectionsAccepted == 20 }
        XCTAssertTrue(settled)
        XCTAssertLessThanOrEqual(server.statistics.open, 8)
        XCTAssertEqual(server.statistics.evictedAtCap, 12)
        // The oldest were the ones closed.
        XCTAssertTrue(idle[0].isClosedByPeer)
        XCTAssertFalse(idle[19].isClosedByPeer)
        let status = try await get(server, "/health")
        XCTAssertEqual(status, 200)
    }

    /// When every open connection is busy in a handler, a new one gets 503 at once instead of
    /// waiting; the busy ones finish normally.
    func testBusyServerAtTheCapAnswers503() async throws {
        let release = DispatchSemaphore(value: 0)
        let server = try HTTPServer.start(options: HTTPServerOptions(maxConnections: 2, handlerThreads: 2)) { request in
            if request.path == "/block" { release.wait() }
            return .text("done")
        }
        defer { server.stop() }
        let busy = [try XCTUnwrap(LoopbackSocket(port: server.port)), try XCTUnwrap(LoopbackSocket(port: server.port))]
        for socket in busy { XCTAssertTrue(socket.send("GET /block HTTP/1.1\r\nHost: a\r\n\r\n")) }
        let inHandlers = try await eventually(timeout: 20) { server.requestsHandled == 2 }
        XCTAssertTrue(inHandlers)
        let extra = try XCTUnwrap(LoopbackSocket(port: server.port))
        let refused = extra.readAll(seconds: 10)
        XCTAssertTrue(refused.hasPrefix("HTTP/1.1 503 "), "got: \(refused)")
        XCTAssertEqual(server.statistics.rejectedAtCap, 1)
        release.signal()
        release.signal()
        for socket in busy { XCTAssertTrue(socket.readAll(seconds: 0.5).contains("done")) }
    }

    /// The inline handler answers on the event loop while every handler thread is stuck.
    func testInlineHandlerAnswersWhileHandlersAreBusy() async throws {
        let release = DispatchSemaphore(value: 0)
        let options = HTTPServerOptions(handlerThreads: 1, inlineHandler: { request in request.path == "/livez" ? .text("alive") : nil })
        let server = try HTTPServer.start(options: options) { request in
            if request.path == "/block" { release.wait() }
            return .text("handled")
        }
        defer { server.stop() }
        let stuck = [try XCTUnwrap(LoopbackSocket(port: server.port)), try XCTUnwrap(LoopbackSocket(port: server.port))]
        for socket in stuck { socket.send("GET /block HTTP/1.1\r\nHost: a\r\n\r\n") }
        let busy = try await eventually(timeout: 20) { server.requestsHandled == 2 }
        XCTAssertTrue(busy)
        let probe = try XCTUnwrap(LoopbackSocket(port: server.port))
        probe.send("GET /livez HTTP/1.1\r\nHost: a\r\n\r\nGET /livez HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        let answers = probe.readAll(seconds: 10)
        XCTAssertEqual(answers.components(separatedBy: "HTTP/1.1 200 OK").count - 1, 2, answers)
        XCTAssertTrue(answers.hasSuffix("alive"))
        release.signal()
        release.signal()
        for socket in stuck { XCTAssertTrue(socket.readAll(seconds: 0.5).contains("handled")) }
    }

    /// Each route has its body limit: a GET with a body is refused (413) before the body is read.
    func testPerRouteBodyLimits() async throws {
        let server = try HTTPServer.start(options: HTTPServerOptions(bodyLimit: { method, _ in method == "POST" ? 16 : 0 })) { request in
            .text("got \(request.body.count)")
        }
        defer { server.stop() }
        let get = try XCTUnwrap(LoopbackSocket(port: server.port))
        get.send("GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        XCTAssertTrue(get.readAll(seconds: 5).hasPrefix("HTTP/1.1 413 "))
        let big = try XCTUnwrap(LoopbackSocket(port: server.port))
        big.send("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n")
        XCTAssertTrue(big.readAll(seconds: 5).hasPrefix("HTTP/1.1 413 "))
        let fits = try await client.send(HTTPRequest(method: "POST", url: URL(string: "\(server.baseURL)/x")!, body: Data("0123456789abcdef".utf8)))
        XCTAssertEqual(String(decoding: fits.body, as: UTF8.self), "got 16")
    }

    /// The listening socket and every accepted one are close-on-exec, so a child process
    /// (pg_dump, psql) never inherits them.
    func testSocketsAreCloseOnExec() async throws {
        let server = try HTTPServer.start { _ in .text("ok") }
        defer { server.stop() }
        var clients: [LoopbackSocket] = []
        for _ in 0..<3 { clients.append(try XCTUnwrap(LoopbackSocket(port: server.port))) }
        let accepted = try await eventually(timeout: 20) { server.connectionsAccepted == 3 }
        XCTAssertTrue(accepted)
        let sockets = ProcessFacts.sockets(localPort: server.port)
        XCTAssertEqual(sockets.count, 4, "the listening socket and three accepted ones")
        for socket in sockets { XCTAssertTrue(socket.closeOnExec, "fd \(socket.fd) would leak into child processes") }
        XCTAssertEqual(clients.count, 3)
    }

    /// Many idle connections cost no threads: the handler pool stays within its bound.
    func testIdleConnectionsCostNoThreads() async throws {
        let server = try HTTPServer.start(options: HTTPServerOptions(handlerThreads: 4)) { _ in .text("ok") }
        defer { server.stop() }
        let before = ProcessFacts.threads
        var idle: [LoopbackSocket] = []
        for _ in 0..<300 { idle.append(try XCTUnwrap(LoopbackSocket(port: server.port))) }
        let accepted = try await eventually(timeout: 20) { server.connectionsAccepted == 300 }
        XCTAssertTrue(accepted)
        let status = try await get(server, "/x")
        XCTAssertEqual(status, 200)
        XCTAssertGreaterThanOrEqual(server.statistics.open, 300, "the idle ones are all still open")
        XCTAssertLessThanOrEqual(ProcessFacts.threads - before, 8, "threads grew with connections")
        XCTAssertLessThanOrEqual(server.statistics.handlerThreads, 4)
    }
}
