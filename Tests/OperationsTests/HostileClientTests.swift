import Foundation
import HTTPClient
import JobQueue
import Logging
import Operations
import PostgresClient
import TestSupport
import XCTest

/// The operations endpoint under the attack the issue measured: thousands of clients that
/// connect and say nothing, and hundreds that send half a request head and then drip bytes.
final class HostileClientTests: XCTestCase {
    /// 2,000 idle connections plus 200 slow-header ones, all held open at once: `/health`,
    /// `/livez` and `/metrics` still answer, the worker drains its jobs meanwhile, the process
    /// gains no thread per connection and its memory stays bounded.
    func testIdleAndSlowHeaderFloodLeavesHealthAndJobsWorking() async throws {
        let idleCount = 2_000, slowCount = 200
        // Each connection is two descriptors here (the client's end and the server's), plus
        // the database's and the test's own.
        let needed = 2 * (idleCount + slowCount) + 1_000
        let limit = ProcessFacts.raiseOpenFileLimit(to: needed)
        try XCTSkipIf(limit < needed, "the open-file limit is \(limit); this test needs \(needed) (raise the hard limit)")

        let db = try TestCluster.migratedDatabase("ops_hostile")
        let worker = RunningWorker(url: db.url, id: "ops-hostile")
        // A cap above the flood, and a head deadline longer than the test, so every hostile
        // connection stays open while the checks run (the cap and the deadline have tests of
        // their own in ServerLimitTests).
        let server = try OperationsServer.start(
            port: 0, worker: worker.worker, conninfo: db.url, triggerToken: nil, logger: Logger(label: "test"),
            options: OperationsServerOptions(cacheSeconds: 1, server: .init(headerTimeout: 600, maxConnections: 4_096, handlerThreads: 8)))
        let client = HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: 5, timeout: 5))
        let health = try await eventually(timeout: 30) {
            (try? await client.send(HTTPRequest(url: server.baseURL.appendingPathComponent("health"))))?.status == 200
        }
        XCTAssertTrue(health)
        let threadsBefore = ProcessFacts.threads
        let memoryBefore = ProcessFacts.residentBytes

        var idle: [LoopbackSocket] = []
        for _ in 0..<idleCount { idle.append(try XCTUnwrap(LoopbackSocket(port: server.http.port))) }
        var slow: [LoopbackSocket] = []
        for _ in 0..<slowCount {
            let socket = try XCTUnwrap(LoopbackSocket(port: server.http.port))
            socket.send("GET /status HTTP/1.1\r\nHost: closebell\r\nX-Slow: ")
            slow.append(socket)
        }
        let dripping = LockedFlag(true)
        let slowSockets = slow
        let dripper = Thread {
            while dripping.value {
                for socket in slowSockets { socket.send("a") }
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
        dripper.start()
        defer { dripping.value = false }
        let allOpen = try await eventually(timeout: 60) { server.http.statistics.open >= idleCount + slowCount }
        XCTAssertTrue(allOpen, "open: \(server.http.statistics.open)")

        // The worker keeps working: jobs enqueued now are all run.
        let conn = try await PostgresConnection.connect(db.url)
        _ = try await conn.query("INSERT INTO maintenance_jobs (task, args) SELECT 'noop', '{\"sleep_ms\": 5}' FROM generate_series(1, 50)")

        // Health, liveness and metrics answer (each within the client's 5 s timeout).
        var slowest = 0.0
        for path in ["health", "livez", "readyz", "metrics", "health"] {
            let started = Date()
            let response = try await client.send(HTTPRequest(url: server.baseURL.appendingPathComponent(path)))
            slowest = max(slowest, Date().timeIntervalSince(started))
            XCTAssertEqual(response.status, 200, path)
        }
        print("hostile flood: \(server.http.statistics.open) connections open; slowest of 5 answers \(String(format: "%.3f", slowest)) s")

        let drained = try await eventually(timeout: 60) {
            try await conn.query("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'succeeded'").first?.decode("n", as: Int64.self) == 50
        }
        XCTAssertTrue(drained, "the worker stopped running jobs during the flood")

        let threadsDuring = ProcessFacts.threads
        let memoryDuring = ProcessFacts.residentBytes
        print("hostile flood: threads \(threadsBefore) -> \(threadsDuring); RSS \(memoryBefore >> 20) MiB -> \(memoryDuring >> 20) MiB")
        XCTAssertLessThanOrEqual(threadsDuring - threadsBefore, 16, "threads grew with the connections")
        XCTAssertLessThan(memoryDuring - memoryBefore, 200 << 20, "memory grew by more than 200 MiB for 2,200 connections")
        XCTAssertEqual(server.http.statistics.evictedAtCap, 0)
        XCTAssertLessThanOrEqual(server.http.statistics.handlerThreads, 8)
        // None of the hostile connections got an answer: they are still waiting.
        XCTAssertFalse(slow[0].isClosedByPeer)
        XCTAssertFalse(idle[0].isClosedByPeer)

        dripping.value = false
        for socket in idle + slow { socket.hangUp() }
        let closed = try await eventually(timeout: 30) { server.http.statistics.open <= 10 }
        XCTAssertTrue(closed, "open after the clients left: \(server.http.statistics.open)")
        await conn.close()
        server.stop()
        await worker.stop()
    }

    /// A scrape storm costs one round of queries per cache interval: 200 requests to the
    /// cached endpoints load the snapshot once.
    func testScrapeStormLoadsTheSnapshotOncePerInterval() async throws {
        let db = try TestCluster.migratedDatabase("ops_storm")
        let worker = RunningWorker(url: db.url, id: "ops-storm")
        let server = try OperationsServer.start(port: 0, worker: worker.worker, conninfo: db.url, triggerToken: nil,
                                                logger: Logger(label: "test"), options: OperationsServerOptions(cacheSeconds: 3600))
        let client = HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: 5, timeout: 20))
        // Readiness also asks for the worker's loops: let them start before the storm.
        let started = try await eventually(timeout: 30) { worker.worker.isHealthy }
        XCTAssertTrue(started, "the worker's loops did not start")
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<200 {
                let path = ["metrics", "status", "readyz", "health", ""][i % 5]
                group.addTask { try await client.send(HTTPRequest(url: server.baseURL.appendingPathComponent(path))).status }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        XCTAssertEqual(statuses.filter { $0 == 200 }.count, 200)
        XCTAssertEqual(server.snapshotLoads, 1)
        server.stop()
        await worker.stop()
    }
}
