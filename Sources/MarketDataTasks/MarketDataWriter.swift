import Foundation
import Toolkit
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
/// temporary staging table (one per connection, emptied at each commit) and merged with ONE `INSERT … ON CONFLICT DO UPDATE`, in one short
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
            try stagingTable(tx, "closebell_daily_staging", """
                symbol text, date date, open numeric, high numeric, low numeric, close numeric,
                volume numeric, vwap numeric, trades_count bigint
                """)
            // One row per key, the latest bar winning, chosen here, and the rows in key order
            // (concurrent writers lock the rows they update in one order): the upsert then needs
            // no DISTINCT ON, a sort of the whole batch in the server.
            var zone = NewYorkTime.OffsetCache()
            var latest: [String: (bar: MarketBar, date: String)] = [:]
            latest.reserveCapacity(bars.count)
            for bar in bars {
                let date = zone.local(epochMilliseconds: bar.timestamp).date.description
                let key = bar.symbol + "\u{1F}" + date
                if let kept = latest[key], kept.bar.timestamp > bar.timestamp { continue }
                latest[key] = (bar, date)
            }
            let rows = latest.sorted { $0.key < $1.key }
            let staged = try tx.copyIn("COPY closebell_daily_staging FROM STDIN") { writer in
                for (_, (bar, date)) in rows {
                    try writer.writeRow([
                        bar.symbol, date,
                        text(bar.open), text(bar.high), text(bar.low), text(bar.close), text(bar.volume),
                        bar.vwap.map(text), bar.tradesCount.map { String($0) },
                    ])
                }
            }
            let merged = try tx.execute("""
                INSERT INTO market_data_daily AS d (symbol, date, open, high, low, close, volume, vwap, trades_count, updated_at)
                SELECT symbol, date, open, high, low, close, volume, vwap, trades_count, now()
                  FROM closebell_daily_staging
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
            try stagingTable(tx, "closebell_slots_staging", "symbol text, date date, slot_index smallint, volume numeric")
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

    /// Creates the connection's temporary staging table `name` unless it exists. Its rows go at
    /// every commit or rollback (`ON COMMIT DELETE ROWS`), so a task that writes thousands of
    /// batches on one connection creates it once instead of adding and dropping catalog rows
    /// for every batch.
    private static func stagingTable(_ tx: PostgresSession, _ name: String, _ columns: String) throws {
        let exists = try tx.query("SELECT to_regclass($1) IS NOT NULL AS found", ["pg_temp." + name]).first?["found"] == "t"
        if !exists { try tx.execute("CREATE TEMP TABLE \(name) (\(columns)) ON COMMIT DELETE ROWS") }
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

    /// The exact decimal text of a value, as `Decimal.description` writes it (no exponent, no
    /// trailing fraction zeros). Foundation's `description` divides the 128-bit mantissa digit by
    /// digit and allocates on the way, which made formatting the largest cost of a load; this
    /// writes the digits of a mantissa that fits 64 bits directly.
    static func text(_ value: Decimal) -> String {
        guard let parts = DecimalParts(value), parts.mantissa != 0 else { return value.isZero ? "0" : value.description }
        var mantissa = parts.mantissa, exponent = parts.exponent
        while exponent < 0, mantissa % 10 == 0 {
            mantissa /= 10
            exponent += 1
        }
        var digits = Array(String(mantissa).utf8)
        if exponent > 0 {
            digits.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: exponent))
        } else if exponent < 0 {
            let fraction = -exponent
            if digits.count <= fraction {
                digits.insert(contentsOf: repeatElement(UInt8(ascii: "0"), count: fraction - digits.count + 1), at: 0)
            }
            digits.insert(UInt8(ascii: "."), at: digits.count - fraction)
        }
        if parts.negative { digits.insert(UInt8(ascii: "-"), at: 0) }
        return String(decoding: digits, as: UTF8.self)
    }
}

/// The sign, exponent and (64-bit) mantissa of a `Decimal`, read from its storage.
///
/// swift-foundation stores a `Decimal` in 20 bytes: an `Int8` exponent; a byte holding the
/// length in 16-bit words (high 4 bits), the sign (bit 3) and the compact flag (bit 2); two
/// reserved bytes; eight little-endian 16-bit mantissa words. It does not expose those fields
/// on Linux. The layout is checked
/// once against values built through the public API; if it ever differs, `init` always fails
/// and callers use `description`.
struct DecimalParts {
    let negative: Bool
    let exponent: Int
    let mantissa: UInt64

    /// Nil for NaN, for a mantissa wider than 64 bits, or when the layout check failed.
    init?(_ value: Decimal) {
        guard Self.layoutMatches, let parts = Self.read(value) else { return nil }
        self = parts
    }

    private init(negative: Bool, exponent: Int, mantissa: UInt64) {
        self.negative = negative
        self.exponent = exponent
        self.mantissa = mantissa
    }

    private static func read(_ value: Decimal) -> DecimalParts? {
        guard MemoryLayout<Decimal>.size == 20 else { return nil }
        return withUnsafeBytes(of: value) { raw -> DecimalParts? in
            let exponent = Int(Int8(bitPattern: raw[0]))
            let length = Int(raw[1] >> 4)
            let negative = raw[1] & 0x08 != 0
            guard length > 0 || !negative, length <= 4 else { return nil }
            var mantissa: UInt64 = 0
            for word in (0..<length).reversed() {
                mantissa = mantissa << 16 | UInt64(raw[4 + 2 * word]) | UInt64(raw[5 + 2 * word]) << 8
            }
            return DecimalParts(negative: negative, exponent: exponent, mantissa: mantissa)
        }
    }

    /// Whether `read` decodes values built through the public API to what they are.
    private static let layoutMatches: Bool = {
        let probes: [(Decimal, Bool, Int, UInt64)] = [
            (Decimal(sign: .minus, exponent: -2, significand: 1234), true, -2, 1234),
            (Decimal(sign: .plus, exponent: 7, significand: Decimal(UInt64(0x1234_5678_9ABC))), false, 7, 0x1234_5678_9ABC),
            (Decimal(sign: .plus, exponent: -20, significand: Decimal(UInt64.max)), false, -20, UInt64.max),
        ]
        return probes.allSatisfy { value, negative, exponent, mantissa in
            guard let parts = read(value) else { return false }
            return parts.negative == negative && parts.exponent == exponent && parts.mantissa == mantissa
        }
    }()
}
