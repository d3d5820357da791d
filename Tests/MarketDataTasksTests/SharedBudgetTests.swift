import ChildProcess
import Foundation
import Toolkit
import JobQueue
import Polygon
import PostgresClient
import SampleMarket
import TestSupport
import XCTest
@testable import MarketDataTasks

/// One API budget for every worker process, through PostgreSQL.
final class SharedBudgetTests: XCTestCase {
    /// The most requests the log holds in any one-second window [t, t + 1 s).
    static func busiestSecond(_ requests: [SampleRecordedRequest]) -> Int {
        let times = requests.map(\.receivedAt).sorted()
        var most = 0, start = 0
        for end in times.indices {
            while times[end] - times[start] >= .seconds(1) { start += 1 }
            most = max(most, end - start + 1)
        }
        return most
    }

    /// The margin (30 %: a window of 1.3 s per 8 grants) absorbs the delay between a grant and
    /// the request reaching the server, which reached 190 ms on this busy 2-core machine.
    func testThreeWorkerProcessesStayWithinOnePlansQuota() async throws {
        let limit = 8
        let db = try TestCluster.migratedDatabase("budget")
        let data = SampleMarketData(symbols: 45, from: CivilDate.today().adding(days: -30), through: CivilDate.today())
        let server = try SamplePolygonServer.start(data: data, options: SampleServerOptions(apiKey: "budget-key", requestsPerSecondLimit: limit))
        defer { server.stop() }
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.query("INSERT INTO ticker_universe (symbol) SELECT unnest($1::text[])", [data.symbols])
        // Three jobs of 15 symbols each: 45 one-request units, run at once by three workers.
        for part in 0..<3 {
            let symbols = Array(data.symbols[(part * 15)..<(part * 15 + 15)])
            try await conn.query("INSERT INTO maintenance_jobs (task, args) VALUES ('volume_slots', $1::jsonb)",
                                 [#"{"days": 5, "symbols": [\#(symbols.map { "\"\($0)\"" }.joined(separator: ","))]}"#])
        }
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-budget-\(getpid()).yaml")
        try """
            polygon:
              requests_per_second: \(limit)
              shared_budget_margin: 0.3
              max_concurrent_requests: 4
              max_attempts: 1
            market_data:
              concurrency: 4
            """.write(to: config, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: config) }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-budget-\(getpid()).log").path
        defer { unlink(log) }
        let env = ["DATABASE_URL": db.url, "POLYGON_BASE_URL": server.baseURL.absoluteString, "POLYGON_API_KEY": "budget-key",
                   "CLOSEBELL_CONFIG": config.path]
        let workers = try (0..<3).map { _ in
            try ClosebellBinary.start(["worker", "--concurrency", "1", "--poll", "0.2", "--log-format", "json"], environment: env, logFile: log)
        }
        defer { for w in workers { w.signal(SIGKILL); w.wait() } }
        let done = try await eventually(timeout: 120) {
            try await conn.query("SELECT count(*)::int AS n FROM maintenance_jobs WHERE state IN ('succeeded', 'failed')").first?
                .decode("n", as: Int.self) == 3
        }
        XCTAssertTrue(done, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
        for w in workers { w.signal(SIGTERM) }
        for w in workers { XCTAssertEqual(w.wait(seconds: 20), 0) }

        let jobs = try await conn.query("SELECT state FROM maintenance_jobs")
        XCTAssertEqual(jobs.map { $0["state"] ?? "" }, ["succeeded", "succeeded", "succeeded"])
        // Each worker ran one job (concurrency 1 each): the three ran at the same time.
        let completions = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
            .filter { $0.contains(#""event":"task_completed""#) }
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(Set(completions.compactMap { $0["worker"] as? String }).count, 3, "\(completions)")
        let requests = server.requests
        XCTAssertEqual(requests.count, 45)
        XCTAssertEqual(requests.filter { $0.status == 429 }.count, 0)
        XCTAssertLessThanOrEqual(Self.busiestSecond(requests), limit)
        // The cluster-wide cap on requests in flight defaults to max_concurrent_requests (4).
        XCTAssertLessThanOrEqual(server.maxInFlight, 4)
        let granted = try await conn.query("SELECT granted FROM polygon_api_budget WHERE name = 'polygon'").first?.decode("granted", as: Int.self)
        XCTAssertEqual(granted, 45)
        let slots = try await conn.query("SELECT count(*)::int AS n FROM polygon_api_grants").first?.decode("n", as: Int.self)
        XCTAssertEqual(slots, limit)
        await conn.close()
    }

    func testTheBudgetSpacesStartsAcrossClients() async throws {
        let db = try TestCluster.migratedDatabase("budget2")
        let data = SampleMarketData(symbols: 4)
        let server = try SamplePolygonServer.start(data: data, options: SampleServerOptions(requestsPerSecondLimit: 10))
        defer { server.stop() }
        // Two processes' worth of clients, each with its own generous local limiter.
        let clients = (0..<2).map { _ in
            PolygonClient(configuration: PolygonConfiguration(baseURL: server.baseURL, requestsPerSecond: 0, maxConcurrentRequests: 8),
                          budget: PostgresAPIBudget(conninfo: db.url, requestsPerSecond: 10, margin: 0.3))
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in clients {
                for _ in 0..<12 { group.addTask { _ = try await client.tickerDetails(symbol: "AAPL") } }
            }
            try await group.waitForAll()
        }
        XCTAssertEqual(server.requests.filter { $0.status == 429 }.count, 0)
        XCTAssertLessThanOrEqual(Self.busiestSecond(server.requests), 10)
        for client in clients { await (client.budget as? PostgresAPIBudget)?.close() }
        await slowServerConcurrency(db: db.url)

        // An unreachable budget fails the request (not sent) with a clear error.
        let broken = PolygonClient(configuration: PolygonConfiguration(baseURL: server.baseURL, requestsPerSecond: 0),
                                   budget: PostgresAPIBudget(conninfo: "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", requestsPerSecond: 10))
        let before = server.requestCount
        do {
            _ = try await broken.tickerDetails(symbol: "AAPL")
            XCTFail("expected APIBudgetUnavailable")
        } catch let error as APIBudgetUnavailable {
            XCTAssertTrue(error.description.contains("polygon_api_budget"), error.description)
        }
        XCTAssertEqual(server.requestCount, before)
    }

    func testPerTaskPacingCapsUnitsInFlight() async throws {
        let symbols = (0..<12).map(SampleMarketData.generatedSymbol)
        let fixture = try await MarketFixture(symbols: symbols, options: SampleServerOptions(apiKey: MarketFixture.apiKey, latency: 0.02))
        try await fixture.seed(symbols)
        let paced = MarketDataSettings(pacing: ["metadata_enrich": TaskPacing(concurrency: 1, delayMilliseconds: 5)])
        let json = try await fixture.run(MetadataEnrichTask(client: fixture.client, settings: paced), args: #"{"concurrency": 8}"#)
        XCTAssertTrue(json.text.contains(#""ok":12"#), json.text)
        XCTAssertEqual(fixture.server.maxInFlight, 1)
        await fixture.stop()
    }

    /// Two clients of one budget capped at 2 in flight, against a slow server: never more than 2
    /// requests at the server at once, and every slot is given back.
    private func slowServerConcurrency(db url: String) async {
        do {
            let server = try SamplePolygonServer.start(data: SampleMarketData(symbols: 2), options: SampleServerOptions(latency: 0.1))
            defer { server.stop() }
            let budgets = (0..<2).map { _ in PostgresAPIBudget(conninfo: url, name: "capped", requestsPerSecond: 0, maxInFlight: 2) }
            let clients = budgets.map {
                PolygonClient(configuration: PolygonConfiguration(baseURL: server.baseURL, requestsPerSecond: 0, maxConcurrentRequests: 8), budget: $0)
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in clients {
                    for _ in 0..<5 { group.addTask { _ = try await client.tickerDetails(symbol: "AAPL") } }
                }
                try await group.waitForAll()
            }
            XCTAssertEqual(server.requestCount, 10)
            XCTAssertEqual(server.maxInFlight, 2)
            let connection = try await PostgresConnection.connect(url)
            let held = try await connection.query(
                "SELECT count(*)::int AS n FROM polygon_api_inflight WHERE name = 'capped' AND expires_at > now()").first?.decode("n", as: Int.self)
            XCTAssertEqual(held, 0)
            await connection.close()
            for budget in budgets { await budget.close() }
        } catch {
            XCTFail("\(error)")
        }
    }

    func testBadBudgetAndPacingSettingsAreRefusedWithTheirKeys() throws {
        let db = try TestCluster.migratedDatabase()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pacing-\(UUID().uuidString).yaml").path
        defer { unlink(path) }
        let cases = [
            ("polygon:\n  shared_budget_margin: 0.9\n", "polygon.shared_budget_margin: must be 0...0.5, got 0.9"),
            ("market_data:\n  pacing:\n    metadata_enrich: {concurency: 5}\n", "market_data.pacing.metadata_enrich.concurency: unknown key"),
            ("market_data:\n  pacing:\n    metadata_enrich: 5\n", "market_data.pacing.metadata_enrich: expected {concurrency: N, delay_ms: N}"),
            ("market_data:\n  pacing:\n    earnings: {concurrency: 0}\n", "market_data.pacing.earnings.concurrency: must be at least 1, got 0"),
        ]
        for (yaml, message) in cases {
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            let result = try ClosebellBinary.run(["worker", "--config", path], environment: ["DATABASE_URL": db.url])
            XCTAssertNotEqual(result.status, 0, yaml)
            XCTAssertTrue(result.output.contains(message), result.output)
        }
    }
}
