import Foundation
import Toolkit
import PostgresClient
import TestSupport
import XCTest
@testable import MarketDataTasks

/// The COPY + upsert write path on TimescaleDB hypertables whose chunks are compressed (checked
/// with 2.28.3 on PostgreSQL 15): `ohlc_daily` reloads the last 30 days and `volume_slots` the
/// last 10, which reach chunks `compress` has already compressed; new days go straight in with
/// COPY, into compressed chunks too. Skipped without TimescaleDB.
final class TimescaleWriterTests: XCTestCase {
    override func setUp() async throws {
        try XCTSkipUnless(try TestCluster.timescaleAvailable(), "TimescaleDB is not installed for this PostgreSQL server")
    }

    /// Turns compression on for both hypertables and compresses all their chunks.
    private func compressEveryChunk(_ conn: PostgresConnection) async throws {
        try await conn.execute(
            """
            ALTER TABLE market_data_daily SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol',
                                               timescaledb.compress_orderby = 'date DESC');
            ALTER TABLE volume_slots SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol',
                                          timescaledb.compress_orderby = 'date DESC');
            SELECT count(compress_chunk(c)) FROM show_chunks('market_data_daily') c;
            SELECT count(compress_chunk(c)) FROM show_chunks('volume_slots') c;
            """)
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
        try await compressEveryChunk(conn)
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

    func testNewDaysAreCopiedStraightIntoHypertablesAndFallBackToTheMerge() async throws {
        let db = try TestCluster.timescaleDatabase("tsd")
        let conn = try await PostgresConnection.connect(db.url)
        let first = CivilDate("2025-01-02")!
        func bars(_ day: Int, close: Decimal, symbols: [String] = ["AAPL", "MSFT"]) -> [MarketBar] {
            symbols.map { symbol in
                MarketBar(symbol: symbol, timestamp: NewYorkTime.epochMilliseconds(date: first.adding(days: day), minuteOfDay: 0),
                          open: 10, high: 11, low: 9, close: close, volume: 1000, vwap: nil, tradesCount: nil)
            }
        }
        // Forty days but day 20, one batch: new, so copied straight in.
        let history = (0..<40).filter { $0 != 20 }.flatMap { bars($0, close: Decimal(10 + $0)) }
        let loaded = try await conn.withSession { try MarketDataWriter.writeDailyBars(history, session: $0) }
        XCTAssertEqual(loaded, MarketDataWriter.Outcome(staged: 78, written: 78, path: .direct))
        let slotDay = first.adding(days: 20)
        let slots = [0, 191].map { VolumeSlot(symbol: "AAPL", date: slotDay.adding(days: -1), slotIndex: $0, volume: 5) }
        let slotsLoaded = try await conn.withSession { try MarketDataWriter.writeVolumeSlots(slots, session: $0) }
        XCTAssertEqual(slotsLoaded.path, .direct)
        try await compressEveryChunk(conn)

        // The missing day lies inside a compressed chunk: still new, still copied straight in.
        let gapBars = bars(20, close: 30)
        let gap = try await conn.withSession { try MarketDataWriter.writeDailyBars(gapBars, session: $0) }
        XCTAssertEqual(gap, MarketDataWriter.Outcome(staged: 2, written: 2, path: .direct))
        let gapSlots = [VolumeSlot(symbol: "AAPL", date: slotDay, slotIndex: 3, volume: 7)]
        let gapSlotsOutcome = try await conn.withSession { try MarketDataWriter.writeVolumeSlots(gapSlots, session: $0) }
        XCTAssertEqual(gapSlotsOutcome.path, .direct)

        // A key of a new day another session commits after the check: merged, the batch wins.
        let other = try await PostgresConnection.connect(db.url)
        let day = first.adding(days: 40).description
        try await other.execute("""
            BEGIN;
            INSERT INTO market_data_daily (symbol, date, open, high, low, close, volume) VALUES ('MSFT', '\(day)', 1, 1, 1, 1, 1);
            """)
        let batch = bars(40, close: 50, symbols: ["AAPL", "MSFT", "NVDA"])
        let write = Task { try await conn.withSession { try MarketDataWriter.writeDailyBars(batch, session: $0) } }
        let pid = conn.backendPID
        let blocked = try await eventually {
            try await other.query("SELECT wait_event_type = 'Lock' AS w FROM pg_stat_activity WHERE pid = $1", [Int(pid)]).first?["w"] == "t"
        }
        XCTAssertTrue(blocked, "the writer never waited for the other session's row")
        try await other.execute("COMMIT")
        let outcome = try await write.value
        XCTAssertEqual(outcome, MarketDataWriter.Outcome(staged: 3, written: 3, path: .directThenMerge))

        let closes = try await conn.query("""
            SELECT date::text AS d, string_agg(symbol || '=' || close::text, ',' ORDER BY symbol) AS c
              FROM market_data_daily WHERE date IN ($1::date, $2::date) GROUP BY date ORDER BY date
            """, [first.adding(days: 20).description, day]).values
        XCTAssertEqual(closes, [["2025-01-22", "AAPL=30,MSFT=30"], [day, "AAPL=50,MSFT=50,NVDA=50"]])
        let totals = try await conn.query(
            "SELECT (SELECT count(*) FROM market_data_daily) AS bars, (SELECT count(*) FROM volume_slots) AS slots").first
        XCTAssertEqual(try totals?.decode("bars", as: Int.self), 83)
        XCTAssertEqual(try totals?.decode("slots", as: Int.self), 3)
        // Everything again: merged, nothing rewritten.
        let everything = history + gapBars + batch
        let again = try await conn.withSession { try MarketDataWriter.writeDailyBars(everything, session: $0) }
        XCTAssertEqual(again, MarketDataWriter.Outcome(staged: 83, written: 0, path: .merge))
        await other.close()
        await conn.close()
    }
}
