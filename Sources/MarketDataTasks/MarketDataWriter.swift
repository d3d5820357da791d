import Foundation
import PostgresClient

/// One 5-minute volume slot of one symbol and date.
public struct VolumeSlot: Sendable, Equatable, Hashable {
    /// The symbol.
    public var symbol: String
    /// The New York date.
    public var date: CivilDate
    /// 0...191 (slot 0 = 04:00-04:04 New York).
    public var slotIndex: Int
    /// Sum of the minute bars' volumes.
    public var volume: Decimal

    /// Creates a slot.
    public init(symbol: String, date: CivilDate, slotIndex: Int, volume: Decimal) {
        self.symbol = symbol
        self.date = date
        self.slotIndex = slotIndex
        self.volume = volume
    }

    /// Rolls one symbol's minute bars into slots, keeping only days of `range` (the API's range
    /// is inclusive, but a bar's New York date can differ from the date the request named).
    public static func rollUp(symbol: String, bars: [MarketBar], range: DateRange) -> [VolumeSlot] {
        rollUp(bars.map { bar -> MarketBar in
            var bar = bar
            bar.symbol = symbol
            return bar
        }).filter { $0.date >= range.from && $0.date <= range.to }
    }

    /// Rolls minute bars into slots: each bar starting at 04:00 ≤ t < 20:00 New York time adds
    /// its volume to slot (minutes since 04:00 on its New York date) / 5; bars outside are
    /// ignored and slots without bars are absent. Sorted by symbol, date, slot.
    public static func rollUp(_ bars: [MarketBar]) -> [VolumeSlot] {
        struct Key: Hashable {
            let symbol: String
            let day: Int
            let slot: Int
        }
        var totals: [Key: Decimal] = [:]
        var zone = NewYorkTime.OffsetCache()
        for bar in bars {
            guard let position = zone.slot(epochMilliseconds: bar.timestamp) else { continue }
            totals[Key(symbol: bar.symbol, day: position.date.dayNumber, slot: position.slot), default: 0] += bar.volume
        }
        return totals.map { VolumeSlot(symbol: $0.key.symbol, date: CivilDate(dayNumber: $0.key.day), slotIndex: $0.key.slot, volume: $0.value) }
            .sorted { ($0.symbol, $0.date.dayNumber, $0.slotIndex) < ($1.symbol, $1.date.dayNumber, $1.slotIndex) }
    }
}

/// The bulk write path of the market-data tables: rows are streamed with `COPY` into a
/// temporary staging table and merged with ONE `INSERT … ON CONFLICT DO UPDATE`, in one short
/// transaction. Rows whose values did not change are not rewritten (no dead tuples on an
/// idempotent rerun). All functions block: call them inside `PostgresConnection.withSession`.
public enum MarketDataWriter {
    /// What one merge did.
    public struct Outcome: Sendable, Equatable {
        /// Rows sent through COPY.
        public var staged: Int
        /// Rows inserted or changed by the upsert.
        public var written: Int
        /// Creates an outcome.
        public init(staged: Int, written: Int) {
            self.staged = staged
            self.written = written
        }
    }

    /// Upserts daily bars into `market_data_daily`, keyed by (symbol, New York date of `t`).
    /// When a batch holds two bars for one key, the later timestamp wins.
    @discardableResult
    public static func writeDailyBars(_ bars: [MarketBar], session: PostgresSession) throws -> Outcome {
        guard !bars.isEmpty else { return Outcome(staged: 0, written: 0) }
        return try session.transaction { tx in
            try tx.execute("""
                CREATE TEMP TABLE closebell_daily_staging (
                    symbol text, date date, ts bigint, open numeric, high numeric, low numeric, close numeric,
                    volume numeric, vwap numeric, trades_count bigint
                ) ON COMMIT DROP
                """)
            var zone = NewYorkTime.OffsetCache()
            let staged = try tx.copyIn("COPY closebell_daily_staging FROM STDIN") { writer in
                for bar in bars {
                    try writer.writeRow([
                        bar.symbol, zone.local(epochMilliseconds: bar.timestamp).date.description, String(bar.timestamp),
                        text(bar.open), text(bar.high), text(bar.low), text(bar.close), text(bar.volume),
                        bar.vwap.map(text), bar.tradesCount.map { String($0) },
                    ])
                }
            }
            let merged = try tx.execute("""
                INSERT INTO market_data_daily AS d (symbol, date, open, high, low, close, volume, vwap, trades_count, updated_at)
                SELECT DISTINCT ON (symbol, date) symbol, date, open, high, low, close, volume, vwap, trades_count, now()
                  FROM closebell_daily_staging
                 ORDER BY symbol, date, ts DESC
                ON CONFLICT (symbol, date) DO UPDATE
                   SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
                       volume = EXCLUDED.volume, vwap = EXCLUDED.vwap, trades_count = EXCLUDED.trades_count,
                       updated_at = EXCLUDED.updated_at
                 WHERE (d.open, d.high, d.low, d.close, d.volume, d.vwap, d.trades_count)
                       IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close,
                                         EXCLUDED.volume, EXCLUDED.vwap, EXCLUDED.trades_count)
                """)
            return Outcome(staged: staged, written: merged.affectedRows ?? 0)
        }
    }

    /// Upserts volume slots. For every (symbol, date) present in `slots`, slots of that day
    /// that are absent from `slots` are deleted, so a day always matches its latest load.
    /// `slots` must hold at most one row per (symbol, date, slot), as `VolumeSlot.rollUp` gives.
    @discardableResult
    public static func writeVolumeSlots(_ slots: [VolumeSlot], session: PostgresSession) throws -> Outcome {
        guard !slots.isEmpty else { return Outcome(staged: 0, written: 0) }
        return try session.transaction { tx in
            try tx.execute("""
                CREATE TEMP TABLE closebell_slots_staging (symbol text, date date, slot_index smallint, volume numeric)
                ON COMMIT DROP
                """)
            let staged = try tx.copyIn("COPY closebell_slots_staging FROM STDIN") { writer in
                for slot in slots {
                    try writer.writeRow([slot.symbol, slot.date.description, String(slot.slotIndex), text(slot.volume)])
                }
            }
            let removed = try tx.execute("""
                DELETE FROM volume_slots v
                 USING (SELECT DISTINCT symbol, date FROM closebell_slots_staging) days
                 WHERE v.symbol = days.symbol AND v.date = days.date
                   AND NOT EXISTS (SELECT 1 FROM closebell_slots_staging s
                                    WHERE s.symbol = v.symbol AND s.date = v.date AND s.slot_index = v.slot_index)
                """)
            let merged = try tx.execute("""
                INSERT INTO volume_slots AS v (symbol, date, slot_index, volume)
                SELECT symbol, date, slot_index, volume FROM closebell_slots_staging
                ON CONFLICT (symbol, date, slot_index) DO UPDATE SET volume = EXCLUDED.volume
                 WHERE v.volume IS DISTINCT FROM EXCLUDED.volume
                """)
            return Outcome(staged: staged, written: (merged.affectedRows ?? 0) + (removed.affectedRows ?? 0))
        }
    }

    /// Upserts one symbol's ticker details into `ticker_metadata`, stamping `updated_at`:
    /// `sic_division` from `TickerDetails.sicDivision`, `sector` from the SQL mapping
    /// `sic_sector(sic_code)`, shares from `TickerDetails.sharesOutstanding`. `floatShares` is
    /// stored when `floatFetched` (nil then means the API has no figure); otherwise the stored
    /// value is kept (NULL for a new row).
    public static func writeMetadata(_ details: TickerDetails, floatShares: Decimal? = nil, floatFetched: Bool = false,
                                     session: PostgresSession) throws {
        try session.query("""
            INSERT INTO ticker_metadata AS m (symbol, name, market_cap, shares_outstanding, sector, sic_division, industry, sic_code,
                                              primary_exchange, float_shares, description, homepage_url, updated_at)
            VALUES ($1, $2, $3::numeric, $4::numeric, sic_sector($7), $5, $6, $7, $8, $9::numeric, $10, $11, now())
            ON CONFLICT (symbol) DO UPDATE
               SET name = EXCLUDED.name, market_cap = EXCLUDED.market_cap, shares_outstanding = EXCLUDED.shares_outstanding,
                   sector = EXCLUDED.sector, sic_division = EXCLUDED.sic_division, industry = EXCLUDED.industry,
                   sic_code = EXCLUDED.sic_code, primary_exchange = EXCLUDED.primary_exchange,
                   float_shares = CASE WHEN $12::boolean THEN EXCLUDED.float_shares ELSE m.float_shares END,
                   description = EXCLUDED.description, homepage_url = EXCLUDED.homepage_url, updated_at = EXCLUDED.updated_at
            """, texts: [
                details.symbol, details.name, details.marketCap.map(text), details.sharesOutstanding.map(text),
                details.sicDivision, details.sicDescription, details.sicCode, details.primaryExchange,
                floatFetched ? floatShares.map(text) : nil, details.description, details.homepageURL, floatFetched ? "true" : "false",
            ])
    }

    /// Recomputes `ticker_volume_stats` in one statement: the newest 50 rows of each symbol in
    /// `market_data_daily` ranked by date, averaged over the newest 5/10/30/50 (fewer when
    /// fewer exist) in exact numeric; `bars_5d`...`bars_50d` record how many bars each average
    /// used (an average with fewer bars than its window is partial, never NULLed). `symbols`
    /// limits the symbols (nil: all). Returns the number of symbols written.
    @discardableResult
    public static func refreshVolumeStats(symbols: [String]?, session: PostgresSession) throws -> Int {
        let rows = try session.query("""
            WITH ranked AS (
                SELECT symbol, volume, row_number() OVER (PARTITION BY symbol ORDER BY date DESC) AS rn
                  FROM market_data_daily
                 WHERE $1::text[] IS NULL OR symbol = ANY ($1::text[])
            )
            INSERT INTO ticker_volume_stats AS s
                   (symbol, avg_volume_5d, avg_volume_10d, avg_volume_30d, avg_volume_50d, days_available,
                    bars_5d, bars_10d, bars_30d, bars_50d, updated_at)
            SELECT symbol,
                   avg(volume) FILTER (WHERE rn <= 5),
                   avg(volume) FILTER (WHERE rn <= 10),
                   avg(volume) FILTER (WHERE rn <= 30),
                   avg(volume),
                   count(*)::integer,
                   count(*) FILTER (WHERE rn <= 5)::integer,
                   count(*) FILTER (WHERE rn <= 10)::integer,
                   count(*) FILTER (WHERE rn <= 30)::integer,
                   count(*)::integer,
                   now()
              FROM ranked
             WHERE rn <= 50
             GROUP BY symbol
            ON CONFLICT (symbol) DO UPDATE
               SET avg_volume_5d = EXCLUDED.avg_volume_5d, avg_volume_10d = EXCLUDED.avg_volume_10d,
                   avg_volume_30d = EXCLUDED.avg_volume_30d, avg_volume_50d = EXCLUDED.avg_volume_50d,
                   days_available = EXCLUDED.days_available, bars_5d = EXCLUDED.bars_5d, bars_10d = EXCLUDED.bars_10d,
                   bars_30d = EXCLUDED.bars_30d, bars_50d = EXCLUDED.bars_50d, updated_at = EXCLUDED.updated_at
            """, texts: [symbols.map { $0.postgresText } ?? nil])
        return rows.affectedRows ?? 0
    }

    /// The exact decimal text of a value (`Decimal.description` never uses an exponent).
    static func text(_ value: Decimal) -> String { value.description }
}
