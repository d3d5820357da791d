import Foundation
import Toolkit
import PostgresClient
import TestSupport
import XCTest
@testable import MarketDataTasks

/// The COPY + upsert write path on TimescaleDB hypertables whose chunks are compressed (checked
/// with 2.28.3 on PostgreSQL 15): `ohlc_daily` reloads the last 30 days and `volume_slots` the
/// last 10, which reach chunks `compress` has already compressed. Skipped without TimescaleDB.
final class TimescaleWriterTests: XCTestCase {
    override func setUp() async throws {
        try XCTSkipUnless(try TestCluster.timescaleAvailable(), "TimescaleDB is not installed for this PostgreSQL server")
    }

    func testUpsertsIntoCompressedChunksAreExactAndIdempotent() async throws {
        let db = try TestCluster.timescaleDatabase("tsw")
        let conn = try await PostgresConnection.connect(db.url)
        let first = CivilDate("2025-01-02")!
        let bars = (0..<60).flatMap { day in
            ["AAPL", "MSFT"].map { symbol in
                MarketBar(symbol: symbol, timestamp: NewYorkTime.epochMilliseconds(date: first.adding(days: day), minuteOfDay: 0),
                          open: 10, high: 11, low: 9, close: Decimal(10 + day), volume: Decimal(1000 + day), vwap: nil, tradesCount: nil)
            }
        }
        let slots = (0..<20).flatMap { day in
            [0, 5, 191].map { VolumeSlot(symbol: "AAPL", date: first.adding(days: day), slotIndex: $0, volume: Decimal($0 + day)) }
        }
        try await conn.withSession { try MarketDataWriter.writeDailyBars(bars, session: $0) }
        try await conn.withSession { try MarketDataWriter.writeVolumeSlots(slots, session: $0) }
        try await conn.execute(
            """
            ALTER TABLE market_data_daily SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol',
                                               timescaledb.compress_orderby = 'date DESC');
            ALTER TABLE volume_slots SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol',
                                          timescaledb.compress_orderby = 'date DESC');
            SELECT count(compress_chunk(c)) FROM show_chunks('market_data_daily') c;
            SELECT count(compress_chunk(c)) FROM show_chunks('volume_slots') c;
            """)
        let uncompressed = try await conn.query(
            "SELECT count(*) AS n FROM timescaledb_information.chunks WHERE NOT is_compressed").first?.decode("n", as: Int.self)
        XCTAssertEqual(uncompressed, 0)

        // The same load again changes nothing.
        let again = try await conn.withSession { try MarketDataWriter.writeDailyBars(bars, session: $0) }
        XCTAssertEqual(again, MarketDataWriter.Outcome(staged: 120, written: 0, path: .merge))
        let slotsAgain = try await conn.withSession { try MarketDataWriter.writeVolumeSlots(slots, session: $0) }
        XCTAssertEqual(slotsAgain.written, 0)

        // A correction, a new symbol, and a day reloaded without one of its slots.
        var corrected = bars[0]
        corrected.close = Decimal(string: "10.25")!
        let newSymbol = MarketBar(symbol: "NVDA", timestamp: bars[0].timestamp, open: 1, high: 2, low: 0.5, close: 1.5, volume: 7, vwap: nil, tradesCount: nil)
        let changedBars = [corrected, newSymbol]
        let changed = try await conn.withSession { try MarketDataWriter.writeDailyBars(changedBars, session: $0) }
        XCTAssertEqual(changed.written, 2)
        let reloadSlots = [slots[0], slots[2]]
        let reload = try await conn.withSession { try MarketDataWriter.writeVolumeSlots(reloadSlots, session: $0) }
        XCTAssertEqual(reload.written, 1)

        let day = try await conn.query(
            "SELECT symbol, close::text AS c, volume::text AS v FROM market_data_daily WHERE date = '2025-01-02' ORDER BY 1")
        XCTAssertEqual(day.values, [["AAPL", "10.25", "1000"], ["MSFT", "10", "1000"], ["NVDA", "1.5", "7"]])
        let totals = try await conn.query(
            "SELECT (SELECT count(*) FROM market_data_daily) AS bars, (SELECT count(*) FROM volume_slots) AS slots").first
        XCTAssertEqual(try totals?.decode("bars", as: Int.self), 121)
        XCTAssertEqual(try totals?.decode("slots", as: Int.self), 59)
        let firstDay = try await conn.query(
            "SELECT string_agg(slot_index::text, ',' ORDER BY slot_index) AS s FROM volume_slots WHERE date = '2025-01-02'").first?["s"]
        XCTAssertEqual(firstDay, "0,191")
        await conn.close()
    }
}
