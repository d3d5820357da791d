import Foundation
import Toolkit
import PostgresClient
import TestSupport
import XCTest
@testable import MarketDataTasks

/// The COPY + upsert write path and the volume statistics, on the real test cluster.
final class WriterTests: XCTestCase {
    private func bar(_ symbol: String, _ date: String, close: String, volume: String, vwap: String? = nil, trades: Int64? = nil) -> MarketBar {
        // Daily bars start at midnight New York time.
        MarketBar(symbol: symbol, timestamp: NewYorkTime.epochMilliseconds(date: CivilDate(date)!, minuteOfDay: 0),
                  open: Decimal(string: close)! - 1, high: Decimal(string: close)! + 1, low: Decimal(string: close)! - 2,
                  close: Decimal(string: close)!, volume: Decimal(string: volume)!, vwap: vwap.flatMap { Decimal(string: $0) },
                  tradesCount: trades)
    }

    func testMigrationCreatesTablesWithChecks() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        for table in ["ticker_universe", "market_data_daily", "volume_slots", "ticker_metadata", "ticker_volume_stats"] {
            let rows = try await conn.query("SELECT to_regclass($1) IS NOT NULL AS ok", [table])
            XCTAssertEqual(try rows.first?.decode("ok", as: Bool.self), true, table)
        }
        do {
            try await conn.query("INSERT INTO volume_slots (symbol, date, slot_index, volume) VALUES ('X', '2025-01-02', 192, 1)")
            XCTFail("slot 192 accepted")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, "23514")
        }
        try await conn.query("INSERT INTO maintenance_jobs (task, args) VALUES ('metadata_enrich', '{\"stale_days\": 3, \"concurrency\": 2}')")
        try await conn.query("INSERT INTO ticker_universe (symbol) VALUES ('AAPL')")
        let row = try await conn.query("SELECT active, source FROM ticker_universe").first
        XCTAssertEqual(try row?.decode("active", as: Bool.self), true)
        XCTAssertEqual(row?["source"], "user")
        await conn.close()
    }

    func testDailyBarsUpsertIsExactAndIdempotent() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let bars = [
            bar("AAPL", "2025-03-07", close: "239.07", volume: "46273565.5", vwap: "238.8912", trades: 593_000),
            bar("AAPL", "2025-03-10", close: "227.48", volume: "72071199"),
            bar("MSFT", "2025-03-10", close: "380.16", volume: "0.000001", vwap: "380.5", trades: 1),
        ]
        let first = try await conn.withSession { try MarketDataWriter.writeDailyBars(bars, session: $0) }
        XCTAssertEqual(first, MarketDataWriter.Outcome(staged: 3, written: 3, path: .direct))
        let again = try await conn.withSession { try MarketDataWriter.writeDailyBars(bars, session: $0) }
        XCTAssertEqual(again, MarketDataWriter.Outcome(staged: 3, written: 0, path: .merge))
        var changed = bars[1]
        changed.close = Decimal(string: "228.01")!
        let changedBar = changed
        let update = try await conn.withSession { try MarketDataWriter.writeDailyBars([changedBar], session: $0) }
        XCTAssertEqual(update.written, 1)
        XCTAssertEqual(update.path, .merge)
        let rows = try await conn.query("SELECT symbol, date::text AS d, close::text AS c, volume::text AS v, vwap::text AS w, trades_count FROM market_data_daily ORDER BY 1, 2")
        XCTAssertEqual(rows.values, [
            ["AAPL", "2025-03-07", "239.07", "46273565.5", "238.8912", "593000"],
            ["AAPL", "2025-03-10", "228.01", "72071199", nil, nil],
            ["MSFT", "2025-03-10", "380.16", "0.000001", "380.5", "1"],
        ])
        await conn.close()
    }

    func testTheLatestBarOfAKeyInOneBatchWins() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        var later = bar("AAPL", "2025-03-10", close: "2", volume: "20")
        later.timestamp += 60_000
        let batch = [later, bar("AAPL", "2025-03-10", close: "1", volume: "10"), bar("MSFT", "2025-03-10", close: "3", volume: "30")]
        let outcome = try await conn.withSession { try MarketDataWriter.writeDailyBars(batch, session: $0) }
        XCTAssertEqual(outcome, MarketDataWriter.Outcome(staged: 2, written: 2, path: .direct))
        let rows = try await conn.query("SELECT symbol, close::text AS c FROM market_data_daily ORDER BY 1")
        XCTAssertEqual(rows.values, [["AAPL", "2"], ["MSFT", "3"]])
        await conn.close()
    }

    func testTheStagingTableIsCreatedOncePerConnectionAndEmptiedAtEachCommit() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let batch = [bar("AAPL", "2025-03-10", close: "2", volume: "20")]
        let oid = { () async throws -> String? in
            try await conn.query("SELECT to_regclass('pg_temp.closebell_daily_staging')::oid::text AS oid").first?["oid"]
        }
        // A new day goes straight into the table: no staging table yet.
        let direct = try await conn.withSession { try MarketDataWriter.writeDailyBars(batch, session: $0) }
        XCTAssertEqual(direct.path, .direct)
        let none = try await oid()
        XCTAssertNil(none)
        let merged = try await conn.withSession { try MarketDataWriter.writeDailyBars(batch, session: $0) }
        XCTAssertEqual(merged.path, .merge)
        let first = try await oid()
        XCTAssertNotNil(first)
        let left = try await conn.query("SELECT count(*) AS n FROM pg_temp.closebell_daily_staging").first?["n"]
        XCTAssertEqual(left, "0", "rows go at commit")
        // A refused batch (a NUL byte, which text cannot hold) rolls back, on either path; the next one works.
        for date in ["2025-03-10", "2025-03-11"] {
            let refused = [bar("BAD\u{0}", date, close: "3", volume: "30")]
            do {
                try await conn.withSession { _ = try MarketDataWriter.writeDailyBars(refused, session: $0) }
                XCTFail("a NUL byte was accepted")
            } catch is PostgresError {}
        }
        let outcome = try await conn.withSession { try MarketDataWriter.writeDailyBars(batch, session: $0) }
        XCTAssertEqual(outcome, MarketDataWriter.Outcome(staged: 1, written: 0, path: .merge))
        let again = try await oid()
        XCTAssertEqual(again, first, "the same table, not a new one per batch")
        let rows = try await conn.query("SELECT count(*) AS n FROM market_data_daily").first?["n"]
        XCTAssertEqual(rows, "1")
        await conn.close()
    }

    func testVolumeSlotsReplaceADaysSlots() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let day = CivilDate("2025-03-10")!
        let slots = [0, 5, 191].map { VolumeSlot(symbol: "AAPL", date: day, slotIndex: $0, volume: Decimal($0) + Decimal(string: "0.5")!) }
        let first = try await conn.withSession { try MarketDataWriter.writeVolumeSlots(slots, session: $0) }
        XCTAssertEqual(first, MarketDataWriter.Outcome(staged: 3, written: 3, path: .direct))
        let again = try await conn.withSession { try MarketDataWriter.writeVolumeSlots(slots, session: $0) }
        XCTAssertEqual(again, MarketDataWriter.Outcome(staged: 3, written: 0, path: .merge))
        // A reload without slot 5 removes it; other days and symbols are untouched.
        try await conn.query("INSERT INTO volume_slots VALUES ('AAPL', '2025-03-11', 5, 1), ('MSFT', '2025-03-10', 5, 1)")
        let reload = try await conn.withSession { try MarketDataWriter.writeVolumeSlots([slots[0], slots[2]], session: $0) }
        XCTAssertEqual(reload.written, 1)
        let rows = try await conn.query("SELECT symbol, date::text AS d, slot_index, volume::text AS v FROM volume_slots ORDER BY 1, 2, 3")
        XCTAssertEqual(rows.values, [
            ["AAPL", "2025-03-10", "0", "0.5"], ["AAPL", "2025-03-10", "191", "191.5"],
            ["AAPL", "2025-03-11", "5", "1"], ["MSFT", "2025-03-10", "5", "1"],
        ])
        await conn.close()
    }

    func testVolumeStatsAreExactAverages() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        // 60 days for AAPL with fractional volumes, 3 for MSFT (fewer than every window).
        var bars: [MarketBar] = []
        var expected: [Decimal] = []
        for i in 0..<60 {
            let volume = Decimal(1_000_000 + i * 1_013) + Decimal(string: "0.125")! * Decimal(i % 3)
            bars.append(bar("AAPL", CivilDate("2025-01-01")!.adding(days: i).description, close: "10", volume: "\(volume)"))
            expected.insert(volume, at: 0)
        }
        for (i, v) in ["10", "20", "40"].enumerated() {
            bars.append(bar("MSFT", CivilDate("2025-01-01")!.adding(days: i).description, close: "10", volume: v))
        }
        let allBars = bars
        try await conn.withSession { try MarketDataWriter.writeDailyBars(allBars, session: $0) }
        let written = try await conn.withSession { try MarketDataWriter.refreshVolumeStats(symbols: nil, session: $0) }
        XCTAssertEqual(written, 2)
        let row = try await conn.query("SELECT * FROM ticker_volume_stats WHERE symbol = 'AAPL'").first!
        for n in [5, 10, 30, 50] {
            let sum = expected.prefix(n).reduce(Decimal(0), +)
            let average = try row.decode("avg_volume_\(n)d", as: Decimal.self)
            // Stored unrounded: average × n gives the sum back to the precision numeric keeps.
            var difference = average * Decimal(n) - sum
            var rounded = Decimal()
            NSDecimalRound(&rounded, &difference, 10, .plain)
            XCTAssertEqual(rounded, 0, "\(n)d")
            // And it is the same numeric as sum / count in SQL.
            let same = try await conn.query("""
                SELECT (SELECT sum(volume) / count(*) FROM (SELECT volume FROM market_data_daily WHERE symbol = 'AAPL' ORDER BY date DESC LIMIT $1) x)
                       = (SELECT avg_volume_\(n)d FROM ticker_volume_stats WHERE symbol = 'AAPL') AS ok
                """, [n])
            XCTAssertEqual(try same.first?.decode("ok", as: Bool.self), true, "\(n)d")
        }
        XCTAssertEqual(try row.decode("days_available", as: Int.self), 50)
        let msft = try await conn.query("SELECT avg_volume_5d::text AS a5, avg_volume_50d::text AS a50, days_available FROM ticker_volume_stats WHERE symbol = 'MSFT'").first!
        // 70/3 has no finite decimal: numeric keeps 16 fractional digits (avg's own scale), no float.
        XCTAssertEqual(msft["a5"], "23.3333333333333333")
        XCTAssertEqual(msft["a5"], msft["a50"])
        XCTAssertEqual(msft["days_available"], "3")
        await conn.close()
    }
}
