import Foundation
import Toolkit
import JobQueue
import PostgresClient

/// `completeness`: compares each active symbol's rows in `market_data_daily` (the last `days`,
/// default 30) and `volume_slots` (the last `slots_days`, default `market_data.slots_days`)
/// with the NYSE trading days (SQL `market_data_expected_days`, calendar
/// `maintenance_is_trading_day`, half days included), through yesterday in New York (today's
/// bars may not be final). It refetches missing data, at most `max_refetch` units per run:
/// a missing daily date is one grouped-daily request (every symbol of that date); a symbol's
/// missing slot days are one minute-aggregates request over their span. A missing row that
/// `validate` quarantined is counted but not refetched (the API would send the same invalid
/// row). Then it records completeness per table and day in `market_data_completeness`.
public struct CompletenessTask: JobTask {
    /// `completeness`: its arguments and summary (the `maintenance_task_types` row).
    public static let declaration = TaskDeclaration(
        name: "completeness", arguments: ["days": .integer, "slots_days": .integer, "symbols": .stringArray, "max_refetch": .integer, "refetch": .boolean, "concurrency": .integer],
        summary: "Finds symbol-days missing from market_data_daily and volume_slots (NYSE calendar), refetches up to max_refetch, records completeness.",
        reports: [.rowsWritten])
    let source: any MarketDataSource
    let settings: MarketDataSettings

    /// Creates the task around a shared data source.
    public init(source: any MarketDataSource, settings: MarketDataSettings = MarketDataSettings()) {
        self.source = source
        self.settings = settings
    }

    struct Args: Decodable {
        var days: Int?
        var slotsDays: Int?
        var symbols: [String]?
        var maxRefetch: Int?
        var refetch: Bool?
        var concurrency: Int?
        enum CodingKeys: String, CodingKey {
            case days, symbols, refetch, concurrency
            case slotsDays = "slots_days", maxRefetch = "max_refetch"
        }
    }

    /// Completeness of one table over the window.
    struct TableCompleteness: Codable, Equatable {
        var expected: Int
        var present: Int
        var missingBefore: Int
        /// Missing because `validate` quarantined them (not refetched).
        var quarantined: Int
        var percent: Double?
        var missingDays: [String]
        enum CodingKeys: String, CodingKey {
            case expected, present, percent, quarantined
            case missingBefore = "missing_before", missingDays = "missing_days"
        }
    }

    /// The `completeness` task's result.
    public struct Result: TaskResult {
        var task = "completeness"
        var from: CivilDate
        var to: CivilDate
        var slotsFrom: CivilDate
        var tables: [String: TableCompleteness]
        var refetched: UnitCounts
        var refetchPending: Int
        var rowsWritten: Int
        var requests: Int
        var seconds: Double
        enum CodingKeys: String, CodingKey {
            case task, from, to, tables, refetched, requests, seconds
            case slotsFrom = "slots_from", refetchPending = "refetch_pending", rowsWritten = "rows_written"
        }
    }

    struct Gap {
        var table: String
        var symbol: String
        var day: CivilDate
        /// The row was loaded and then quarantined by `validate`: refetching would load the same
        /// invalid row again, so it is counted missing but not refetched.
        var quarantined: Bool
    }

    /// Finds the gaps, refetches up to `max_refetch` of them and records completeness.
    public func run(_ context: JobContext) async throws -> Result {
        let start = ContinuousClock.now
        let args = try arguments(Args.self, of: context)
        let days = args.days ?? settings.completenessDays
        let slotsDays = args.slotsDays ?? settings.slotsDays
        guard (1...3660).contains(days), (1...3660).contains(slotsDays) else {
            throw InvalidJobArguments(task: name, reason: "\"days\" and \"slots_days\" must be 1...3660")
        }
        try MarketDataArguments.checkConcurrency(args.concurrency, task: name)
        let to = NewYorkTime.today().adding(days: -1)
        let from = to.adding(days: -(days - 1)), slotsFrom = to.adding(days: -(slotsDays - 1))
        let maxRefetch = args.maxRefetch ?? settings.completenessMaxRefetch
        return try await withJobConnection(context) { connection in
            let before = try await Self.gaps(connection, from: from, slotsFrom: slotsFrom, to: to, symbols: args.symbols)
            // Units: daily dates first (one request mends every symbol of the date), newest first
            // within the bound, then symbols whose slot days are missing.
            let mendable = before.filter { !$0.quarantined }
            let dailyDays = Array(Set(mendable.filter { $0.table == "market_data_daily" }.map(\.day))).sorted(by: >)
            var slotDays: [String: [CivilDate]] = [:]
            for gap in mendable where gap.table == "volume_slots" { slotDays[gap.symbol, default: []].append(gap.day) }
            let candidates = dailyDays.map { "daily:\($0)" } + slotDays.keys.sorted().map { "slots:\($0)" }
            let units = (args.refetch ?? true) ? Array(candidates.prefix(maxRefetch)) : []
            let universe = Set(try await universeSymbols(connection, explicit: args.symbols))
            var runner = BatchRunner(context: context, settings: settings, source: source, progress: BatchProgress(task: name))
            let source = self.source
            let spans = slotDays.mapValues { (from: $0.min()!, to: $0.max()!) }
            try await runner.run(units: units, concurrency: args.concurrency ?? settings.concurrency) { unit in
                if unit.hasPrefix("daily:") {
                    let fetched = try await source.groupedDaily(date: CivilDate(String(unit.dropFirst(6)))!)
                    let bars = fetched.value.filter { universe.contains($0.symbol) }
                    let outcome = try await connection.withSession { try MarketDataWriter.writeDailyBars(bars, session: $0) }
                    return UnitOutcome(rows: outcome.written, requests: fetched.requests, empty: bars.isEmpty)
                }
                let symbol = String(unit.dropFirst(6))
                let span = spans[symbol]!
                let fetched = try await source.aggregates(symbol: symbol, timespan: .minute, from: span.from, to: span.to)
                let slots = VolumeSlot.rollUp(symbol: symbol, bars: fetched.value, range: DateRange(from: span.from, to: span.to))
                let outcome = try await connection.withSession { try MarketDataWriter.writeVolumeSlots(slots, session: $0) }
                return UnitOutcome(rows: outcome.written, requests: fetched.requests, empty: slots.isEmpty)
            }
            let tables = try await Self.record(connection, from: from, slotsFrom: slotsFrom, to: to, symbols: args.symbols, before: before)
            let progress = runner.progress
            return Result(from: from, to: to, slotsFrom: slotsFrom, tables: tables, refetched: progress.counts,
                          refetchPending: candidates.count - units.count, rowsWritten: progress.rowsWritten,
                          requests: progress.requests, seconds: elapsedSeconds(since: start))
        }
    }

    /// The missing (table, symbol, day) triples of the window.
    static func gaps(_ connection: PostgresConnection, from: CivilDate, slotsFrom: CivilDate, to: CivilDate,
                     symbols: [String]?) async throws -> [Gap] {
        let rows = try await connection.query("""
            SELECT e.table_name, e.symbol, e.day::text AS day,
                   EXISTS (SELECT 1 FROM market_data_quarantine q
                            WHERE q.table_name = e.table_name AND q.symbol = e.symbol AND q.date = e.day) AS quarantined
              FROM market_data_expected_days($1::date, $2::date, $3::date, $4::text[]) e
             WHERE NOT e.present ORDER BY e.table_name, e.symbol, e.day
            """, [from.description, slotsFrom.description, to.description, symbols])
        return try rows.map {
            Gap(table: try $0.decode("table_name"), symbol: try $0.decode("symbol"), day: CivilDate(try $0.decode("day", as: String.self))!,
                quarantined: $0["quarantined"] == "t")
        }
    }

    /// Records completeness per table and day (after the refetch) and returns the totals.
    static func record(_ connection: PostgresConnection, from: CivilDate, slotsFrom: CivilDate, to: CivilDate, symbols: [String]?,
                       before: [Gap]) async throws -> [String: TableCompleteness] {
        let rows = try await connection.query("""
            WITH counted AS (
                SELECT table_name, day, count(*)::int AS expected, count(*) FILTER (WHERE present)::int AS present
                  FROM market_data_expected_days($1::date, $2::date, $3::date, $4::text[])
                 GROUP BY table_name, day
            ), recorded AS (
                INSERT INTO market_data_completeness AS c (table_name, day, expected, present, checked_at)
                SELECT table_name, day, expected, present, now() FROM counted
                ON CONFLICT (table_name, day) DO UPDATE
                   SET expected = EXCLUDED.expected, present = EXCLUDED.present, checked_at = EXCLUDED.checked_at
                RETURNING 1
            )
            SELECT table_name, sum(expected)::int AS expected, sum(present)::int AS present,
                   coalesce(array_agg(day::text ORDER BY day) FILTER (WHERE present < expected), '{}') AS missing_days,
                   (SELECT count(*) FROM recorded)::int AS recorded
              FROM counted GROUP BY table_name ORDER BY table_name
            """, [from.description, slotsFrom.description, to.description, symbols])
        var tables: [String: TableCompleteness] = [:]
        for table in ["market_data_daily", "volume_slots"] {
            tables[table] = TableCompleteness(expected: 0, present: 0, missingBefore: before.filter { $0.table == table }.count,
                                              quarantined: before.filter { $0.table == table && $0.quarantined }.count,
                                              percent: nil, missingDays: [])
        }
        for row in rows {
            let table: String = try row.decode("table_name")
            let expected: Int = try row.decode("expected"), present: Int = try row.decode("present")
            tables[table]?.expected = expected
            tables[table]?.present = present
            tables[table]?.percent = expected > 0 ? (Double(present) / Double(expected) * 10_000).rounded() / 100 : nil
            tables[table]?.missingDays = PostgresArrayText.strings(row["missing_days"] ?? "{}")
        }
        return tables
    }
}

/// Reads a one-dimensional PostgreSQL text array of plain values (`{2026-01-02,2026-01-05}`).
enum PostgresArrayText {
    static func strings(_ text: String) -> [String] {
        let inner = text.trimmingCharacters(in: CharacterSet(charactersIn: "{}"))
        return inner.isEmpty ? [] : inner.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
    }
}
