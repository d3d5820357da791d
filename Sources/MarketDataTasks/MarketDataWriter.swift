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

/// The bulk write path of the market-data tables, one short transaction per batch, taking one
/// of two ways:
///
/// - **Direct COPY** when no row of the batch's dates exists yet (of its symbol, when the batch
///   holds one symbol): the nightly load of a new day, or the first load of a new symbol. The
///   rows are streamed with `COPY` straight into the table, inside a savepoint, as fast as
///   `psql \copy`. A concurrent writer may insert one of the keys after the check: the COPY then
///   fails with a unique violation (23505), or a deadlock (40P01) against a writer locking in
///   another order; the batch rolls back to the savepoint and takes the merge below, so the
///   last writer's values win, no update is lost and the error never reaches the caller.
/// - **Merge** otherwise (reruns, corrections, partial days): rows are streamed with `COPY` into
///   a temporary staging table (one per connection, emptied at each commit) and merged with ONE
///   `INSERT … ON CONFLICT DO UPDATE`. Rows whose values did not change are not rewritten (no
///   dead tuples on an idempotent rerun).
///
/// Rows go in key order either way, so concurrent writers lock keys in one order. All
/// functions block: call them inside `PostgresConnection.withSession`.
public enum MarketDataWriter {
    /// Which way a batch was written.
    public enum Path: String, Sendable, Equatable {
        /// COPY straight into the table: no row of the batch's dates existed.
        case direct
        /// The direct COPY met a row written meanwhile by another session (23505) or a
        /// deadlock (40P01): rolled back to its savepoint, then merged through staging.
        case directThenMerge = "direct_then_merge"
        /// COPY into staging and one upsert: rows of the batch's dates existed already.
        case merge
    }

    /// What one write did.
    public struct Outcome: Sendable, Equatable {
        /// Rows sent through COPY (the last COPY, when the direct one fell back).
        public var staged: Int
        /// Rows inserted or changed (for volume slots also deleted).
        public var written: Int
        /// Which way the batch was written.
        public var path: Path
        /// Creates an outcome.
        public init(staged: Int, written: Int, path: Path) {
            self.staged = staged
            self.written = written
            self.path = path
        }
    }

    /// The columns `writeDailyBars` sends, in COPY order.
    private static let dailyColumns = "symbol, date, open, high, low, close, volume, vwap, trades_count"

    /// Upserts daily bars into `market_data_daily`, keyed by (symbol, New York date of `t`).
    /// When a batch holds two bars for one key, the later timestamp wins (on equal timestamps,
    /// the later one in `bars`).
    @discardableResult
    public static func writeDailyBars(_ bars: [MarketBar], session: PostgresSession) throws -> Outcome {
        guard !bars.isEmpty else { return Outcome(staged: 0, written: 0, path: .merge) }
        let rows = DailyRows(bars)
        return try session.transaction { tx in
            var path = Path.merge
            if try isFresh(tx, table: "market_data_daily", rows.span) {
                if let copied = try copyDirect(tx, into: "market_data_daily (\(dailyColumns))", rows.write) {
                    return Outcome(staged: copied, written: copied, path: .direct)
                }
                path = .directThenMerge
            }
            try stagingTable(tx, "closebell_daily_staging", """
                symbol text, date date, open numeric, high numeric, low numeric, close numeric,
                volume numeric, vwap numeric, trades_count bigint
                """)
            // The rows are unique and in key order already: the upsert needs no DISTINCT ON, a
            // sort of the whole batch in the server.
            let staged = try tx.copyIn("COPY closebell_daily_staging FROM STDIN", rows.write)
            let merged = try tx.execute("""
                INSERT INTO market_data_daily AS d (\(dailyColumns), updated_at)
                SELECT \(dailyColumns), now()
                  FROM closebell_daily_staging
                ON CONFLICT (symbol, date) DO UPDATE
                   SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
                       volume = EXCLUDED.volume, vwap = EXCLUDED.vwap, trades_count = EXCLUDED.trades_count,
                       updated_at = EXCLUDED.updated_at
                 WHERE (d.open, d.high, d.low, d.close, d.volume, d.vwap, d.trades_count)
                       IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close,
                                         EXCLUDED.volume, EXCLUDED.vwap, EXCLUDED.trades_count)
                """)
            return Outcome(staged: staged, written: merged.affectedRows ?? 0, path: path)
        }
    }

    /// Upserts volume slots. For every (symbol, date) present in `slots`, slots of that day
    /// that are absent from `slots` are deleted, so a day always matches its latest load.
    /// `slots` must hold at most one row per (symbol, date, slot), in key order, as
    /// `VolumeSlot.rollUp` gives.
    @discardableResult
    public static func writeVolumeSlots(_ slots: [VolumeSlot], session: PostgresSession) throws -> Outcome {
        guard !slots.isEmpty else { return Outcome(staged: 0, written: 0, path: .merge) }
        let write = { (writer: inout CopyWriter) throws in
            var dates = DateTexts()
            var fields: [String?] = [nil, nil, nil, nil]
            for slot in slots {
                fields[0] = slot.symbol
                fields[1] = dates[slot.date]
                fields[2] = String(slot.slotIndex)
                fields[3] = text(slot.volume)
                try writer.writeRow(fields)
            }
        }
        return try session.transaction { tx in
            var path = Path.merge
            if try isFresh(tx, table: "volume_slots", Span(slots.lazy.map { ($0.symbol, $0.date.dayNumber) })) {
                // No slot of these days existed: nothing to delete.
                if let copied = try copyDirect(tx, into: "volume_slots (symbol, date, slot_index, volume)", write) {
                    return Outcome(staged: copied, written: copied, path: .direct)
                }
                path = .directThenMerge
            }
            try stagingTable(tx, "closebell_slots_staging", "symbol text, date date, slot_index smallint, volume numeric")
            let staged = try tx.copyIn("COPY closebell_slots_staging FROM STDIN", write)
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
            return Outcome(staged: staged, written: (merged.affectedRows ?? 0) + (removed.affectedRows ?? 0), path: path)
        }
    }

    /// The dates a batch covers, and its symbol when it holds only one.
    struct Span {
        /// First and last New York day (`CivilDate.dayNumber`).
        var from = Int.max, to = Int.min
        /// The batch's only symbol; nil when it holds several.
        var symbol: String?

        init<Keys: Sequence>(_ keys: Keys) where Keys.Element == (String, Int) {
            var symbols = 0
            for (symbol, day) in keys {
                from = min(from, day)
                to = max(to, day)
                if symbols == 0 {
                    self.symbol = symbol
                    symbols = 1
                } else if symbols == 1, symbol != self.symbol {
                    self.symbol = nil
                    symbols = 2
                }
            }
        }
    }

    /// True when `table` holds no row dated within `span` (of `span.symbol`, when set). The
    /// first such row is looked up in date order, so the plan is an index scan (the date index,
    /// or the primary key for one symbol) that stops at the first entry: a `NOT EXISTS` lets
    /// the planner pick a sequential scan when the range holds many rows, which reads the
    /// table's old rows first and can take seconds.
    private static func isFresh(_ tx: PostgresSession, table: String, _ span: Span) throws -> Bool {
        let from = CivilDate(dayNumber: span.from).description, to = CivilDate(dayNumber: span.to).description
        let rows: PostgresRows
        if let symbol = span.symbol {
            rows = try tx.query("""
                SELECT (SELECT date FROM \(table) WHERE symbol = $1 AND date BETWEEN $2::date AND $3::date
                         ORDER BY date LIMIT 1) IS NULL AS fresh
                """, texts: [symbol, from, to])
        } else {
            rows = try tx.query("""
                SELECT (SELECT date FROM \(table) WHERE date BETWEEN $1::date AND $2::date ORDER BY date LIMIT 1) IS NULL AS fresh
                """, texts: [from, to])
        }
        return rows.first?["fresh"] == "t"
    }

    /// COPYs the rows `write` writes straight into `target` (a table and its column list)
    /// inside a savepoint. Returns the rows copied, or nil when the COPY met a key another
    /// session wrote after the freshness check (23505) or a deadlock (40P01): the savepoint
    /// is then rolled back (its rows and locks are gone) and the caller merges instead. Other
    /// errors, a cancellation (57014) among them, go to the caller.
    private static func copyDirect(_ tx: PostgresSession, into target: String,
                                   _ write: (inout CopyWriter) throws -> Void) throws -> Int? {
        try tx.execute("SAVEPOINT closebell_direct_copy")
        do {
            return try tx.copyIn("COPY \(target) FROM STDIN", write)
        } catch let error as PostgresError where error.isUniqueViolation || error.sqlState == "40P01" {
            try tx.execute("ROLLBACK TO SAVEPOINT closebell_direct_copy")
            return nil
        }
    }

    /// One batch of daily bars as COPY rows: one row per (symbol, New York date), the bar with
    /// the latest timestamp winning, sorted by symbol then date.
    struct DailyRows {
        /// The bars kept, with their New York day numbers, in key order.
        let rows: [(bar: MarketBar, day: Int)]

        init(_ bars: [MarketBar]) {
            var zone = NewYorkTime.OffsetCache()
            let keyed = bars.map { (bar: $0, day: zone.local(epochMilliseconds: $0.timestamp).date.dayNumber) }
            // A batch already in strict key order (one symbol's bars by date, a sorted grouped
            // day) needs neither the sort nor the dedup.
            var ordered = true
            for i in keyed.indices.dropFirst() where !((keyed[i - 1].bar.symbol, keyed[i - 1].day) < (keyed[i].bar.symbol, keyed[i].day)) {
                ordered = false
                break
            }
            guard !ordered else {
                rows = keyed
                return
            }
            // One sort by key, then timestamp, then position in `bars`: the last of each run of
            // equal keys is the bar that wins.
            let order = keyed.indices.sorted { a, b in
                (keyed[a].bar.symbol, keyed[a].day, keyed[a].bar.timestamp, a) < (keyed[b].bar.symbol, keyed[b].day, keyed[b].bar.timestamp, b)
            }
            var kept: [(bar: MarketBar, day: Int)] = []
            kept.reserveCapacity(order.count)
            for (position, index) in order.enumerated() {
                let next = position + 1 < order.count ? keyed[order[position + 1]] : nil
                if let next, next.day == keyed[index].day, next.bar.symbol == keyed[index].bar.symbol { continue }
                kept.append(keyed[index])
            }
            rows = kept
        }

        /// The dates and symbols of the rows.
        var span: Span { Span(rows.lazy.map { ($0.bar.symbol, $0.day) }) }

        /// Writes the rows in COPY text format, columns as `dailyColumns`.
        func write(_ writer: inout CopyWriter) throws {
            var dates = DateTexts()
            var fields: [String?] = Array(repeating: nil, count: 9)
            for (bar, day) in rows {
                fields[0] = bar.symbol
                fields[1] = dates[CivilDate(dayNumber: day)]
                fields[2] = text(bar.open)
                fields[3] = text(bar.high)
                fields[4] = text(bar.low)
                fields[5] = text(bar.close)
                fields[6] = text(bar.volume)
                fields[7] = bar.vwap.map(text)
                fields[8] = bar.tradesCount.map { String($0) }
                try writer.writeRow(fields)
            }
        }
    }

    /// `CivilDate.description` of the last date asked for, kept: a batch's rows come date after
    /// date or all of one date.
    struct DateTexts {
        private var day = Int.min
        private var text = ""

        subscript(date: CivilDate) -> String {
            mutating get {
                if date.dayNumber != day {
                    day = date.dayNumber
                    text = date.description
                }
                return text
            }
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
