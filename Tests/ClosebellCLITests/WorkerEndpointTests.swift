import Foundation
import HTTPClient
import LocalCluster
import PostgresClient
import TestSupport
import XCTest

/// `closebell worker --http` as an operator runs it.
final class WorkerEndpointTests: XCTestCase {
    func testWorkerServesHealthMetricsAndGuardedTrigger() async throws {
        let db = try TestCluster.migratedDatabase()
        let port = try LocalCluster.freePort()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-http-\(getpid()).log").path
        defer { unlink(log) }
        let token = "trigger-token-0123456789abcdef"
        let worker = try ClosebellBinary.start(
            ["worker", "--http", "127.0.0.1:\(port)", "--log-format", "json"],
            environment: ["DATABASE_URL": db.url, "CLOSEBELL_TRIGGER_TOKEN": token], logFile: log)
        defer { worker.signal(SIGKILL); worker.wait() }
        let client = HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: 2, timeout: 5))
        let base = "http://127.0.0.1:\(port)"
        let healthy = try await eventually(timeout: 20) {
            (try? await client.send(HTTPRequest(method: "GET", url: URL(string: base + "/health")!)))?.status == 200
        }
        XCTAssertTrue(healthy, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")

        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("INSERT INTO maintenance_jobs (task) SELECT 'noop' FROM generate_series(1, 3)")
        let ran = try await eventually(timeout: 20) {
            try await conn.query("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'succeeded'").first?["n"] == "3"
        }
        XCTAssertTrue(ran)
        let metrics = try await client.send(HTTPRequest(method: "GET", url: URL(string: base + "/metrics")!))
        let text = String(decoding: metrics.body, as: UTF8.self)
        XCTAssertEqual(metrics.status, 200)
        XCTAssertTrue(text.contains("closebell_worker_up 1"), text)
        XCTAssertTrue(text.contains(#"closebell_jobs_finished_total{outcome="succeeded",task="noop"} 3"#)
                      || text.contains(#"closebell_jobs_finished_total{task="noop",outcome="succeeded"} 3"#), text)

        let refused = try await client.send(HTTPRequest(method: "POST", url: URL(string: base + "/trigger?cycle=weekly")!))
        XCTAssertEqual(refused.status, 401)
        let accepted = try await client.send(HTTPRequest(
            method: "POST", url: URL(string: base + "/trigger?cycle=weekly")!, headers: [("Authorization", "Bearer \(token)")]))
        XCTAssertEqual(accepted.status, 200, String(decoding: accepted.body, as: UTF8.self))
        let runs = try await conn.query("SELECT count(*) AS n FROM maintenance_cycle_runs WHERE cycle = 'weekly'").first?["n"]
        XCTAssertEqual(runs, "1")
        worker.signal(SIGTERM)
        XCTAssertEqual(worker.wait(seconds: 40), 0)
        XCTAssertFalse(try String(contentsOfFile: log, encoding: .utf8).contains(token), "the token never reaches the log")
    }
}
