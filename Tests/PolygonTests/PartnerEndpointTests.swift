import Foundation
import Toolkit
import HTTPServer
import Polygon
import XCTest

/// The earnings and float endpoints against the constructed fixtures in `Tests/Fixtures/polygon-constructed/`
/// (not recorded: see its README), served over loopback.
final class PartnerEndpointTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/polygon-constructed")

    private func serve(_ file: String, status: Int = 200) throws -> (HTTPServer, PolygonClient, FixtureLocked<[String]>) {
        let body = try Data(contentsOf: Self.root.appendingPathComponent(file))
        let targets = FixtureLocked<[String]>([])
        let server = try HTTPServer.start { request in
            targets.withLock { $0.append(request.target) }
            return .json(body, status: status)
        }
        let client = PolygonClient(configuration: PolygonConfiguration(
            baseURL: server.baseURL, apiKey: "k-partner-123", requestsPerSecond: 0,
            retry: PolygonRetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.02, jitter: false)))
        return (server, client, targets)
    }

    func testEarningsDecodeAndQuery() async throws {
        let (server, client, targets) = try serve("benzinga/v1/earnings.json")
        defer { server.stop() }
        let rows = try await client.earnings(symbol: "AAPL", from: CivilDate("2025-07-01")!, to: CivilDate("2025-12-31")!)
        XCTAssertEqual(rows.count, 2)
        XCTAssertEqual(rows[0].date, "2025-07-31")
        XCTAssertEqual(rows[0].time, "16:30:00")
        XCTAssertEqual(rows[0].dateStatus, "confirmed")
        XCTAssertEqual(rows[0].fiscalPeriod, "Q3")
        XCTAssertEqual(rows[0].fiscalYear, 2025)
        XCTAssertEqual(rows[0].estimatedEPS, 1.43)
        XCTAssertEqual(rows[0].actualEPS, 1.57)
        XCTAssertNil(rows[1].actualEPS)
        XCTAssertEqual(rows[1].dateStatus, "projected")
        let target = try XCTUnwrap(targets.withLock { $0.first })
        XCTAssertTrue(target.hasPrefix("/benzinga/v1/earnings?"), target)
        for item in ["ticker=AAPL", "date.gte=2025-07-01", "date.lte=2025-12-31"] { XCTAssertTrue(target.contains(item), target) }
        XCTAssertFalse(target.contains("k-partner-123"))
    }

    func testEarnings403IsNotAuthorizedWithoutRetry() async throws {
        let (server, client, targets) = try serve("benzinga/v1/earnings-403.json", status: 403)
        defer { server.stop() }
        do {
            _ = try await client.earnings(symbol: "AAPL", from: CivilDate("2025-07-01")!, to: CivilDate("2025-12-31")!)
            XCTFail("expected notAuthorized")
        } catch PolygonError.notAuthorized(let context, let status, let message) {
            XCTAssertEqual(status, 403)
            XCTAssertEqual(context.endpoint, .earnings)
            XCTAssertTrue(message.contains("not entitled"), message)
        }
        XCTAssertEqual(targets.withLock { $0.count }, 1)
    }

    func testFloatDecode() async throws {
        let (server, client, targets) = try serve("stocks/vX/float.json")
        defer { server.stop() }
        let row = try await client.freeFloat(symbol: "AAPL")
        XCTAssertEqual(row?.freeFloat, 14_794_000_000)
        XCTAssertEqual(row?.freeFloatPercent, 99.86)
        XCTAssertEqual(row?.effectiveDate, "2025-09-18")
        XCTAssertTrue(targets.withLock { $0.first ?? "" }.hasPrefix("/stocks/vX/float?ticker=AAPL"))
    }
}
