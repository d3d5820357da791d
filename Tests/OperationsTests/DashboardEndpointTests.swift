import Foundation
import HTTPClient
import JobQueue
import Logging
import Operations
import PostgresClient
import TestSupport
import XCTest

/// `GET /` as a browser receives it: escaped data, a locked-down page, the refreshable part.
final class DashboardEndpointTests: XCTestCase {
    func testDashboardEscapesDataAndLocksThePageDown() async throws {
        let db = try TestCluster.migratedDatabase("ops_dashboard")
        let worker = RunningWorker(url: db.url, id: "ops-dashboard")
        let server = try OperationsServer.start(port: 0, worker: worker.worker, conninfo: db.url, triggerToken: "dashboard-token-0123456789",
                                                logger: Logger(label: "test"), options: OperationsServerOptions(cacheSeconds: 0))
        let conn = try await PostgresConnection.connect(db.url)
        let hostile = "<script>alert('x')</script> & \"quotes\""
        let id: Int64 = try await conn.query(
            "INSERT INTO maintenance_jobs (task, state, attempts, max_attempts, started_at, finished_at, errors) VALUES ('vacuum', 'failed', 1, 1, now(), now(), $1) RETURNING id",
            [try PostgresJSON(encoding: [["error": hostile]])]).first!.decode("id")
        // A job whose errors column a user overwrote with something that is not an array.
        _ = try await conn.query("INSERT INTO maintenance_jobs (task, state, errors) VALUES ('vacuum', 'cancelled', '{\"oops\": 1}')")

        let response = try await TestHTTP.client.send(HTTPRequest(url: server.baseURL))
        XCTAssertEqual(response.status, 200)
        let html = String(decoding: response.body, as: UTF8.self)
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>"))
        XCTAssertFalse(html.contains("<script>alert"), "data is escaped")
        XCTAssertTrue(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quotes&quot;"))
        XCTAssertTrue(html.contains("data-action=\"retry\" data-job=\"\(id)\""))
        XCTAssertFalse(html.contains("http://") || html.contains("https://"), "nothing is fetched from elsewhere")
        let policy = try XCTUnwrap(response.headers["content-security-policy"])
        let nonce = try XCTUnwrap(policy.components(separatedBy: "'nonce-").dropFirst().first?.components(separatedBy: "'").first)
        XCTAssertTrue(html.contains("<script nonce=\"\(nonce)\">"), "the inline script carries the policy's nonce")
        XCTAssertTrue(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"))
        XCTAssertEqual(response.headers["cache-control"], "no-store")

        let part = try await TestHTTP.send("GET", server.baseURL.appending(queryItems: [URLQueryItem(name: "part", value: "main")]))
        XCTAssertEqual(part.status, 200)
        XCTAssertFalse(part.text.contains("<html"), "the refresh gets only the main part")
        XCTAssertTrue(part.text.contains("id=\"queue\""))

        let post = try await TestHTTP.send("POST", server.baseURL)
        XCTAssertEqual(post.status, 405)
        let raw = try XCTUnwrap(LoopbackSocket(port: server.http.port))
        raw.send("GET / HTTP/1.1\r\nHost: closebell\r\nContent-Length: 1\r\n\r\nx")
        XCTAssertTrue(raw.readAll(seconds: 5).hasPrefix("HTTP/1.1 413 "), "GET routes take no body")
        await conn.close()
        server.stop()
        await worker.stop()
    }
}
