import Foundation
import Toolkit
import JobQueue
import PostgresClient

/// How far back `ohlc_daily` must reach so the volume statistics have full windows.
///
/// A symbol with fewer than `historyBars` (50, the longest window of `ticker_volume_stats`)
/// rows in `market_data_daily` — a first run, or a symbol added later — needs history: the range
/// then starts `historyBars + historyMarginDays` NYSE trading days before today (the SQL
/// calendar `maintenance_is_trading_day`). On a fresh install (none of the symbols has a bar)
/// `initialHistoryDays`, when set, asks for that many calendar days instead (up to a year).
struct HistoryNeed {
    /// Symbols short of history.
    var symbols: Int
    /// The first date to load.
    var from: CivilDate

    /// Nil when every symbol has enough bars.
    static func check(_ connection: PostgresConnection, symbols: [String], settings: MarketDataSettings,
                      today: CivilDate) async throws -> HistoryNeed? {
        guard !symbols.isEmpty, settings.historyBars > 0 else { return nil }
        let row = try await connection.query("""
            WITH counts AS (
                SELECT s.symbol, (SELECT count(*) FROM (SELECT 1 FROM market_data_daily d WHERE d.symbol = s.symbol LIMIT $2) x) AS bars
                  FROM unnest($1::text[]) AS s(symbol)
            )
            SELECT count(*) FILTER (WHERE bars < $2)::int AS short, count(*) FILTER (WHERE bars > 0)::int AS with_bars,
                   (SELECT min(d)::date::text FROM (
                        SELECT g::date AS d FROM generate_series($3::date, $3::date - ($4 * 2 + 30), interval '-1 day') AS g
                         WHERE maintenance_is_trading_day(g::date)
                         ORDER BY g DESC LIMIT $4) t) AS start
              FROM counts
            """, [symbols, settings.historyBars, today.description, settings.historyBars + settings.historyMarginDays]).first
        guard let row, let short = try row.decodeIfPresent("short", as: Int.self), short > 0,
              let startText = row["start"], var start = CivilDate(startText) else { return nil }
        if settings.initialHistoryDays > 0, (try row.decodeIfPresent("with_bars", as: Int.self) ?? 0) == 0 {
            start = min(start, today.adding(days: -settings.initialHistoryDays))
        }
        return HistoryNeed(symbols: short, from: start)
    }
}

extension BatchRunner {
    /// Loads grouped-daily bars (one request per date, the whole market) for `days`, keeping
    /// the bars of `symbols`.
    mutating func loadGroupedDays(_ days: [String], symbols: Set<String>, concurrency: Int, connection: PostgresConnection) async throws {
        let source = self.source
        try await run(units: days, concurrency: concurrency) { day in
            let fetched = try await source.groupedDaily(date: CivilDate(day)!)
            let bars = fetched.value.filter { symbols.contains($0.symbol) }
            let outcome = try await connection.withSession { try MarketDataWriter.writeDailyBars(bars, session: $0) }
            return UnitOutcome(rows: outcome.written, requests: fetched.requests)
        }
    }
}

/// `backfill`: daily bars for a date range (`from`/`to`, or `days`) and a list of symbols
/// (default: the active universe), with ONE grouped-daily request per NYSE trading day of the
/// range (the whole market per request; weekends and holidays are not requested).
public struct BackfillTask: JobTask {
    /// `backfill`: its arguments and summary (the `maintenance_task_types` row).
    public static let declaration = TaskDeclaration(
        name: "backfill", arguments: ["days": .integer, "from": .date, "to": .date, "symbols": .stringArray, "concurrency": .integer],
        summary: "Daily bars for a range and symbols (default: the universe): one grouped-daily request per NYSE trading day.",
        reports: [.rowsWritten])
    let source: any MarketDataSource
    let settings: MarketDataSettings

    /// Creates the task around a shared data source.
    public init(source: any MarketDataSource, settings: MarketDataSettings = MarketDataSettings()) {
        self.source = source
        self.settings = settings
    }

    /// Loads the range, one grouped-daily request per trading day.
    public func run(_ context: JobContext) async throws -> BatchResult {
        let start = ContinuousClock.now
        let args = try MarketDataArguments.decode(context, allowedKeys: Self.declaration.argumentKeys)
        guard args.days != nil || args.from != nil else {
            throw InvalidJobArguments(task: name, reason: "give \"from\"/\"to\" (or \"days\") for the range to backfill")
        }
        let previous = BatchProgress.resume(context.previousProgress, task: name, logger: context.logger)
        let range = try previous?.range ?? args.range(defaultDays: settings.ohlcDays, today: NewYorkTime.today(), task: name)
        return try await withJobConnection(context) { connection in
            let symbols = try await universeSymbols(connection, explicit: args.symbols)
            let days = try await connection.query("""
                SELECT g::date::text AS day FROM generate_series($1::date, $2::date, interval '1 day') AS g
                 WHERE maintenance_is_trading_day(g::date) ORDER BY g
                """, [range.from.description, range.to.description]).map { try $0.decode("day", as: String.self) }
            var runner = BatchRunner(context: context, settings: settings, source: source,
                                     progress: previous ?? BatchProgress(task: name, from: range.from, to: range.to))
            if !symbols.isEmpty {
                try await runner.loadGroupedDays(days, symbols: Set(symbols), concurrency: args.concurrency ?? settings.concurrency,
                                                 connection: connection)
            }
            let progress = runner.progress
            return BatchResult(task: name, mode: "grouped", from: range.from, to: range.to, dates: progress.counts,
                               rowsWritten: progress.rowsWritten, requests: progress.requests,
                               seconds: elapsedSeconds(since: start), attempt: context.attempt)
        }
    }
}
