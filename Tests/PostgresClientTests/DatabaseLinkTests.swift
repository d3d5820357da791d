import Foundation
import PostgresClient
import TestSupport
import Toolkit
import XCTest

/// The one reconnecting connection holder: a lost connection is reported and reopened, the
/// setup runs on every new connection, the blocking entry works from a thread of its own, and
/// task cancellation reaches the server.
final class DatabaseLinkTests: XCTestCase {
    /// Events a link reported, in order.
    private final class Events: Sendable {
        private let events = LockedBox<[String]>([])
        func record(_ event: DatabaseLink.Event) {
            switch event {
            case .unavailable(let error, _): events.withLock { $0.append("unavailable: \(error.isConnectionLost)") }
            case .reconnected: events.withLock { $0.append("reconnected") }
            }
        }
        var all: [String] { events.value }
    }

    private func terminate(_ pid: Int32, url: String) async throws {
        let admin = try await PostgresConnection.connect(url)
        try await admin.query("SELECT pg_terminate_backend($1)", [Int(pid)])
        let gone = try await eventually {
            try await admin.query("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1", [Int(pid)]).first?["n"] == "0"
        }
        XCTAssertTrue(gone, "backend \(pid) still there")
        await admin.close()
    }

    func testALostConnectionIsReportedThenReopenedWithItsSetup() async throws {
        let db = try TestCluster.freshDatabase()
        let events = Events()
        let link = DatabaseLink(conninfo: db.url, applicationName: "link test", policy: DatabaseLink.Policy(keepalive: ConnectionKeepalive()),
                                setup: { try $0.execute("SET statement_timeout = '1234ms'") }, onEvent: { events.record($0) })
        let first = try await link.run { session in try session.query("SELECT pg_backend_pid() AS pid, current_setting('statement_timeout') AS t").first }
        XCTAssertEqual(first?["t"], "1234ms")
        let pid = try XCTUnwrap(Int32(first?["pid"] ?? ""))
        try await terminate(pid, url: db.url)

        do {
            _ = try await link.query("SELECT 1")
            XCTFail("a statement on the terminated connection succeeded")
        } catch let error as PostgresError {
            XCTAssertTrue(error.isConnectionLost, "\(error)")
        }
        let second = try await link.query("SELECT pg_backend_pid() AS pid, current_setting('statement_timeout') AS t").first
        XCTAssertNotEqual(second?["pid"], first?["pid"], "a new connection")
        XCTAssertEqual(second?["t"], "1234ms", "the setup ran on the new connection")
        XCTAssertEqual(events.all, ["unavailable: true", "reconnected"])
        await link.close()
    }

    func testAnUnreachableServerFailsEachCallAndBacksOff() async throws {
        let events = Events()
        let link = DatabaseLink(conninfo: "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", applicationName: "link test",
                                policy: DatabaseLink.Policy(minDelaySeconds: 0.01, maxDelaySeconds: 0.02), onEvent: { events.record($0) })
        for _ in 0..<2 {
            do {
                _ = try await link.query("SELECT 1")
                XCTFail("connected to port 1")
            } catch let error as PostgresError {
                XCTAssertTrue(error.isConnectionLost, "\(error)")
            }
        }
        XCTAssertEqual(events.all, ["unavailable: true", "unavailable: true"])
    }

    /// The endpoint's entry: from a thread of its own, a call that meets a connection the server
    /// closed meanwhile runs again on a new one and succeeds.
    func testBlockingCallsRetryOnceOnAStaleConnection() async throws {
        let db = try TestCluster.freshDatabase()
        let events = Events()
        let link = DatabaseLink(conninfo: db.url, applicationName: "link test",
                                policy: DatabaseLink.Policy(retryOnStaleConnection: true), onEvent: { events.record($0) })
        let backend: @Sendable (PostgresSession) throws -> Int32 = { session in
            try session.query("SELECT pg_backend_pid() AS pid").first?.decode("pid") ?? 0
        }
        let pid = try await onThread { try link.runBlocking(backend) }
        try await terminate(pid, url: db.url)
        let next = try await onThread { try link.runBlocking(backend) }
        XCTAssertNotEqual(next, pid)
        XCTAssertEqual(events.all, [], "the second try succeeded: nothing to report")
        await onThread { link.closeBlocking() }
    }

    func testCancellingTheCallerCancelsTheStatementAndKeepsTheConnection() async throws {
        let db = try TestCluster.freshDatabase()
        let link = DatabaseLink(conninfo: db.url, applicationName: "link test")
        let pid = try await link.run { $0.backendPID }
        let observer = try await PostgresConnection.connect(db.url)
        let sleeping = Task { try await link.query("SELECT pg_sleep(600)") }
        let running = try await eventually {
            try await observer.query("SELECT state FROM pg_stat_activity WHERE pid = $1", [Int(pid)]).first?["state"] == "active"
        }
        XCTAssertTrue(running)
        sleeping.cancel()
        do {
            _ = try await sleeping.value
            XCTFail("pg_sleep(600) returned")
        } catch let error as PostgresError {
            XCTAssertTrue(error.isCancellation, "\(error)")
        }
        let after = try await link.run { $0.backendPID }
        XCTAssertEqual(after, pid, "the same connection, still usable")
        await observer.close()
        await link.close()
    }

    func testKeepaliveCanReplaceTheConnectionStringsOwnValues() throws {
        let keepalive = ConnectionKeepalive(idleSeconds: 3, intervalSeconds: 1, count: 3, userTimeoutSeconds: 3, connectTimeoutSeconds: 3)
        let url = try ConnectionInfo(parsing: keepalive.applied(to: "postgresql://u@h/db?connect_timeout=30&keepalives_idle=60", replacing: true))
        XCTAssertEqual(url["connect_timeout"], "3")
        XCTAssertEqual(url["keepalives_idle"], "3")
        XCTAssertEqual(url["tcp_user_timeout"], "3000")
        XCTAssertEqual(url.databaseName, "db")
    }

    /// Runs `work` on a thread of its own (as the HTTP server's handler threads do).
    private func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    private func onThread(_ work: @escaping @Sendable () -> Void) async {
        await withCheckedContinuation { continuation in
            Thread {
                work()
                continuation.resume()
            }.start()
        }
    }
}
