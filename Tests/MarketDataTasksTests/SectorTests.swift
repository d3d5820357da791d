import Foundation
import JobQueue
import Polygon
import PostgresClient
import SampleMarket
import TestSupport
import XCTest
@testable import MarketDataTasks

final class SectorTests: XCTestCase {
    struct Result: Decodable {
        struct Float: Decodable {
            var available: Bool
            var fetched: Int
            var reason: String?
        }
        var float: Float?
        var requests: Int
    }

    func testSectorComesFromTheEditableMappingAndTheDivisionStaysApart() async throws {
        let symbols = ["AAPL", "MSFT", "JPM", "XOM", "JNJ", "WMT", "KO", "AMZN"]
        let fixture = try await MarketFixture(symbols: symbols)
        try await fixture.seed(symbols)
        let result = try await fixture.run(MetadataEnrichTask(client: fixture.client), args: "{}").decode(Result.self)
        XCTAssertEqual(result.float?.available, true)
        XCTAssertEqual(result.requests, 2 * symbols.count)   // details and float per symbol
        let rows = try await fixture.connection.query("SELECT symbol, sector, sic_division FROM ticker_metadata ORDER BY symbol")
        XCTAssertEqual(rows.map { "\($0["symbol"]!)=\($0["sector"] ?? "-")" }, [
            "AAPL=Technology", "AMZN=Consumer Discretionary", "JNJ=Health Care", "JPM=Financials", "KO=Consumer Staples",
            "MSFT=Technology", "WMT=Consumer Staples", "XOM=Energy",
        ])
        XCTAssertEqual(rows.first { $0["symbol"] == "JPM" }?["sic_division"], "Finance, Insurance and Real Estate")

        // A user's exception (the narrowest range wins) applies to stored rows at once.
        _ = try await fixture.connection.query("INSERT INTO sic_sector_map VALUES (7372, 7372, 'Software', 'my scanner')")
        let msft = try await fixture.connection.query("SELECT sector FROM ticker_metadata WHERE symbol = 'MSFT'").first
        XCTAssertEqual(msft?["sector"], "Software")
        _ = try await fixture.connection.query("DELETE FROM sic_sector_map WHERE sector = 'Software'")
        let back = try await fixture.connection.query("SELECT sector FROM ticker_metadata WHERE symbol = 'MSFT'").first
        XCTAssertEqual(back?["sector"], "Technology")
        let none = try await fixture.connection.query("SELECT sic_sector('9999') AS a, sic_sector('abc') AS b, sic_sector(NULL) AS c").first
        XCTAssertNil(none?["a"] ?? nil)
        XCTAssertNil(none?["b"] ?? nil)
        XCTAssertNil(none?["c"] ?? nil)
        await fixture.stop()
    }

    func testAPlanWithoutFloatKeepsItNullAndSaysWhy() async throws {
        let symbols = ["AAPL", "MSFT", "KO"]
        let fixture = try await MarketFixture(symbols: symbols, options: SampleServerOptions(apiKey: MarketFixture.apiKey, floatEntitled: false))
        try await fixture.seed(symbols)
        let result = try await fixture.run(MetadataEnrichTask(client: fixture.client), args: #"{"concurrency": 1}"#).decode(Result.self)
        XCTAssertEqual(result.float?.available, false)
        XCTAssertTrue(result.float?.reason?.contains("float endpoint") ?? false, result.float?.reason ?? "")
        XCTAssertEqual(fixture.server.requests.filter { $0.path.hasPrefix("/stocks/vX/float") }.count, 1, "no float request after the first 403")
        let rows = try await fixture.connection.query("SELECT count(*)::int AS n, count(float_shares)::int AS f, count(sector)::int AS s FROM ticker_metadata").first!
        XCTAssertEqual(rows["n"], "3")
        XCTAssertEqual(rows["f"], "0")
        XCTAssertEqual(rows["s"], "3")
        await fixture.stop()
    }
}
