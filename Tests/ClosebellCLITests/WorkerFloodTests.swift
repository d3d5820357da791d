import ChildProcess
import Foundation
import HTTPClient
import LocalCluster
import PostgresClient
import TestSupport
import XCTest

/// The measurement of the issue, repeated: a worker under systemd's default file-descriptor
/// limit (1,024) with more hostile clients than that.
final class WorkerFloodTests: XCTestCase {
    /// `closebell worker --http` under `prlimit --nofile=1024`: 1,100 idle and 100 slow-header
    /// clients. The endpoint keeps its connections under its cap (evicting the longest waiters),
    /// so the worker still opens its database connections, `/health` answers, and a backup
    /// and noop jobs enqueued meanwhile all finish.
    func testWorkerUnderTheSystemdFileLimitSurvivesAFlood() async throws {
        let limit = ProcessFacts.raiseOpenFileLimit(to: 4_000)
        try XCTSkipIf(limit < 4_000, "the open-file limit is \(limit); this test needs 4000")
        let db = try TestCluster.migratedDatabase()
        let port = try LocalCluster.freePort()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-flood-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("worker.log").path
        let worker = try ChildProcess.spawn(
            "prlimit", ["--nofile=1024:1024", ClosebellBinary.path, "worker", "--http", "127.0.0.1:\(port)", "--log-format", "json"],
            environment: ["DATABASE_URL": db.url, "CLOSEBELL_BACKUP_DIR": dir.appendingPathComponent("backups").path, "CLOSEBELL_CONFIG": ""],
            outputPath: log)
        defer { worker.signal(SIGKILL); worker.wait() }
        let client = HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: 5, timeout: 5))
        let base = "http://127.0.0.1:\(port)"
        let up = try await eventually(timeout: 30) {
            (try? await client.send(HTTPRequest(url: URL(string: base + "/health")!)))?.status == 200
        }
        XCTAssertTrue(up, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")

        var clients: [LoopbackSocket] = []
        for _ in 0..<1_100 { clients.append(try XCTUnwrap(LoopbackSocket(port: UInt16(port)))) }
        for _ in 0..<100 {
            let socket = try XCTUnwrap(LoopbackSocket(port: UInt16(port)))
            socket.send("GET /status HTTP/1.1\r\nHost: closebell\r\nX-Slow: ")
            clients.append(socket)
        }
        let conn = try await PostgresConnection.connect(db.url)
        defer { Task { await conn.close() } }
        _ = try await conn.query("INSERT INTO maintenance_jobs (task) VALUES ('backup')")
        _ = try await conn.query("INSERT INTO maintenance_jobs (task, args) SELECT 'noop', '{\"sleep_ms\": 5}' FROM generate_series(1, 20)")

        let health = try await client.send(HTTPRequest(url: URL(string: base + "/health")!))
        XCTAssertEqual(health.status, 200, String(decoding: health.body, as: UTF8.self))
        let drained = try await eventually(timeout: 120) {
            let row = try await conn.query("SELECT count(*) FILTER (WHERE state = 'succeeded') AS ok, count(*) AS n FROM maintenance_jobs").first
            return row?["ok"] == row?["n"]
        }
        let states = try await conn.query("SELECT task, state, coalesce(errors -> -1 ->> 'error', '') AS error FROM maintenance_jobs WHERE state <> 'succeeded'")
        XCTAssertTrue(drained, states.map { "\($0["task"] ?? "") \($0["state"] ?? ""): \($0["error"] ?? "")" }.joined(separator: "\n"))

        let metrics = String(decoding: try await client.send(HTTPRequest(url: URL(string: base + "/metrics")!)).body, as: UTF8.self)
        func value(_ name: String) -> Double? {
            metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
        }
        let open = try XCTUnwrap(value("closebell_http_connections_open"), metrics)
        XCTAssertLessThanOrEqual(open, 256, "the default cap holds")
        XCTAssertGreaterThanOrEqual(value("closebell_http_connections_evicted_total") ?? 0, 900, "the longest waiters made room")
        let status = ProcessFacts.procFile("/proc/\(worker.pid)/status") ?? ""
        print("flood under 1024 fds: open \(open), evicted \(value("closebell_http_connections_evicted_total") ?? 0); worker "
              + status.split(separator: "\n").filter { $0.hasPrefix("Threads") || $0.hasPrefix("VmRSS") }.joined(separator: ", "))
        func field(_ name: String) -> Int? {
            status.split(separator: "\n").first { $0.hasPrefix(name) }
                .flatMap { Int($0.dropFirst(name.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") }
        }
        XCTAssertLessThan(try XCTUnwrap(field("Threads:")), 64, "threads stay bounded")
        XCTAssertLessThan(try XCTUnwrap(field("VmRSS:")), 300 << 10, "resident memory stays under 300 MiB")
        let logText = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertFalse(logText.contains("Too many open files"), "the worker ran out of descriptors")
        for socket in clients { socket.hangUp() }
        worker.signal(SIGTERM)
        XCTAssertEqual(worker.wait(seconds: 40), 0)
    }
}
