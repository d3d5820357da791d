import Foundation
import JobQueue
import Logging
import PostgresClient

/// Runs `body` with a new connection of the job's database and closes it afterwards.
func withJobConnection<T>(_ context: JobContext, _ body: (PostgresConnection) async throws -> T) async throws -> T {
    let connection = try await context.connect()
    do {
        let value = try await body(connection)
        await connection.close()
        return value
    } catch {
        await connection.close()
        throw error
    }
}

/// Symbols to maintain: the given ones, else the active rows of `ticker_universe`, sorted.
func universeSymbols(_ connection: PostgresConnection, explicit: [String]?) async throws -> [String] {
    if let explicit { return Array(Set(explicit)).sorted() }
    let rows = try await connection.query("SELECT symbol FROM ticker_universe WHERE active ORDER BY symbol")
    return try rows.map { try $0.decode("symbol", as: String.self) }
}

/// `ohlc_daily`: daily bars for a date range, for the active universe (or `symbols`).
///
/// Default mode: one grouped-daily request per weekday of the range (the whole market for that
/// date; holidays return nothing), filtered to the universe; units are dates. Without
/// `from`/`to`, the range reaches back far enough for symbols short of history (`HistoryNeed`). `mode:
/// "per_symbol"`: one daily-aggregates request per symbol over the range; units are symbols.
/// Every write is COPY into a staging table and one upsert, so a rerun changes nothing.
public struct OHLCDailyTask: JobTask {
    /// `ohlc_daily`: its arguments and summary (the `maintenance_task_types` row).
    public static let declaration = TaskDeclaration(
        name: "ohlc_daily", arguments: ["days": .integer, "from": .date, "to": .date, "symbols": .stringArray, "mode": .string, "concurrency": .integer],
        summary: "Daily OHLC bars for the universe (grouped-daily endpoint, or per_symbol).",
        reports: [.rowsWritten])
    let source: any MarketDataSource
    let settings: MarketDataSettings

    /// Creates the task around a shared data source.
    public init(source: any MarketDataSource, settings: MarketDataSettings = MarketDataSettings()) {
        self.source = source
        self.settings = settings
    }

    /// Loads the bars of the range.
    public func run(_ context: JobContext) async throws -> BatchResult {
        let start = ContinuousClock.now
        let args = try MarketDataArguments.decode(context, allowedKeys: Self.declaration.argumentKeys)
        let perSymbol: Bool
        switch args.mode ?? "grouped" {
        case "grouped": perSymbol = false
        case "per_symbol": perSymbol = true
        case let other: throw InvalidJobArguments(task: name, reason: "\"mode\" must be \"grouped\" or \"per_symbol\", got \"\(other)\"")
        }
        let previous = BatchProgress.resume(context.previousProgress, task: name, logger: context.logger)
        let requested = try previous?.range ?? args.range(defaultDays: settings.ohlcDays, today: NewYorkTime.today(), task: name)
        return try await withJobConnection(context) { connection in
            let symbols = try await universeSymbols(connection, explicit: args.symbols)
            var history: HistoryNeed?
            if previous == nil, args.from == nil {
                history = try await HistoryNeed.check(connection, symbols: symbols, settings: settings, today: NewYorkTime.today())
            }
            let range = history.map { DateRange(from: min($0.from, requested.from), to: requested.to) } ?? requested
            let wanted = Set(symbols)
            var runner = BatchRunner(context: context, settings: settings, source: source,
                                     progress: previous ?? BatchProgress(task: name, from: range.from, to: range.to))
            let source = self.source
            let concurrency = args.concurrency ?? settings.concurrency
            if perSymbol {
                try await runner.run(units: symbols, concurrency: concurrency) { symbol in
                    let fetched = try await source.aggregates(symbol: symbol, timespan: .day, from: range.from, to: range.to)
                    let bars = fetched.value.map { bar -> MarketBar in
                        var bar = bar
                        bar.symbol = symbol
                        return bar
                    }
                    let outcome = try await connection.withSession { try MarketDataWriter.writeDailyBars(bars, session: $0) }
                    return UnitOutcome(rows: outcome.written, requests: fetched.requests)
                }
            } else if !wanted.isEmpty {
                try await runner.loadGroupedDays(range.weekdays.map(\.description), symbols: wanted, concurrency: concurrency,
                                                 connection: connection)
            }
            let loaded = try await connection.query("""
                SELECT count(DISTINCT symbol) AS n FROM market_data_daily
                 WHERE date BETWEEN $1::date AND $2::date AND symbol = ANY ($3::text[])
                """, [range.from.description, range.to.description, symbols]).first?.decode("n", as: Int.self) ?? 0
            let progress = runner.progress
            var result = BatchResult(task: name, mode: perSymbol ? "per_symbol" : "grouped", from: range.from, to: range.to,
                                     rowsWritten: progress.rowsWritten, requests: progress.requests,
                                     seconds: elapsedSeconds(since: start), attempt: context.attempt)
            result.historySymbols = history?.symbols
            if perSymbol {
                result.symbols = progress.counts
                result.symbolsWithoutBars = progress.unitsWithoutData
            } else {
                result.dates = progress.counts
                result.symbols = UnitCounts(ok: loaded)
                result.symbolsWithoutBars = symbols.count - loaded
            }
            return result
        }
    }
}

/// `volume_slots`: per symbol, ONE 1-minute aggregates request over the whole range (pages
/// followed), rolled into 5-minute slots of the New York extended session (slot 0 = 04:00,
/// slot 191 = 19:55; bars before 04:00 or from 20:00 are ignored; a slot without bars has no
/// row), written with COPY and one upsert per symbol.
public struct VolumeSlotsTask: JobTask {
    /// `volume_slots`: its arguments and summary (the `maintenance_task_types` row).
    public static let declaration = TaskDeclaration(
        name: "volume_slots", arguments: ["days": .integer, "from": .date, "to": .date, "symbols": .stringArray, "concurrency": .integer],
        summary: "1-minute aggregates rolled into 5-minute volume slots 0-191 (04:00-20:00 New York).",
        reports: [.rowsWritten])
    let source: any MarketDataSource
    let settings: MarketDataSettings

    /// Creates the task around a shared data source.
    public init(source: any MarketDataSource, settings: MarketDataSettings = MarketDataSettings()) {
        self.source = source
        self.settings = settings
    }

    /// Loads and rolls up the minute bars of the range.
    public func run(_ context: JobContext) async throws -> BatchResult {
        let start = ContinuousClock.now
        let args = try MarketDataArguments.decode(context, allowedKeys: Self.declaration.argumentKeys)
        let previous = BatchProgress.resume(context.previousProgress, task: name, logger: context.logger)
        let range = try previous?.range ?? args.range(defaultDays: settings.slotsDays, today: NewYorkTime.today(), task: name)
        return try await withJobConnection(context) { connection in
            let symbols = try await universeSymbols(connection, explicit: args.symbols)
            var runner = BatchRunner(context: context, settings: settings, source: source,
                                     progress: previous ?? BatchProgress(task: name, from: range.from, to: range.to))
            let source = self.source
            try await runner.run(units: symbols, concurrency: args.concurrency ?? settings.concurrency) { symbol in
                let fetched = try await source.aggregates(symbol: symbol, timespan: .minute, from: range.from, to: range.to)
                let slots = VolumeSlot.rollUp(symbol: symbol, bars: fetched.value, range: range)
                let outcome = try await connection.withSession { try MarketDataWriter.writeVolumeSlots(slots, session: $0) }
                return UnitOutcome(rows: outcome.written, requests: fetched.requests, empty: slots.isEmpty)
            }
            let progress = runner.progress
            return BatchResult(task: name, from: range.from, to: range.to, symbols: progress.counts,
                               symbolsWithoutBars: progress.unitsWithoutData, rowsWritten: progress.rowsWritten, requests: progress.requests,
                               seconds: elapsedSeconds(since: start), attempt: context.attempt)
        }
    }
}

/// `metadata_enrich`: ticker details for up to `limit` active symbols — first those without
/// metadata or market cap, then without sector, then those not updated for `stale_days`.
/// (A symbol whose last fetch left market cap or sector empty waits
/// `MarketDataSettings.missingRetryHours` before it counts as missing again.)
public struct MetadataEnrichTask: JobTask {
    /// `metadata_enrich`: its arguments and summary (the `maintenance_task_types` row).
    public static let declaration = TaskDeclaration(
        name: "metadata_enrich", arguments: ["limit": .integer, "symbols": .stringArray, "stale_days": .integer, "concurrency": .integer],
        summary: "Ticker details for symbols missing market cap, then sector, then stale.",
        reports: [.rowsWritten])
    let source: any MarketDataSource
    let settings: MarketDataSettings

    /// Creates the task around a shared data source.
    public init(source: any MarketDataSource, settings: MarketDataSettings = MarketDataSettings()) {
        self.source = source
        self.settings = settings
    }

    /// Fetches the details of the candidates.
    public func run(_ context: JobContext) async throws -> BatchResult {
        let start = ContinuousClock.now
        let args = try MarketDataArguments.decode(context, allowedKeys: Self.declaration.argumentKeys)
        let limit = args.limit ?? settings.metadataLimit
        let staleDays = args.staleDays ?? settings.staleDays
        let previous = BatchProgress.resume(context.previousProgress, task: name, logger: context.logger)
        return try await withJobConnection(context) { connection in
            let symbols: [String]
            if let explicit = args.symbols {
                symbols = Array(Array(Set(explicit)).sorted().prefix(limit))
            } else {
                symbols = try await Self.candidates(connection, limit: limit, staleDays: staleDays, missingRetryHours: settings.missingRetryHours)
            }
            var runner = BatchRunner(context: context, settings: settings, source: source,
                                     progress: previous ?? BatchProgress(task: name))
            let source = self.source
            let float = FloatFetcher(source: source, enabled: settings.fetchFloat)
            try await runner.run(units: symbols, concurrency: args.concurrency ?? settings.concurrency) { symbol in
                let fetched = try await source.tickerDetails(symbol: symbol)
                var details = fetched.value
                details.symbol = symbol
                let stored = details
                let shares = try await float.fetch(symbol)
                try await connection.withSession {
                    try MarketDataWriter.writeMetadata(stored, floatShares: shares.value, floatFetched: shares.fetched, session: $0)
                }
                return UnitOutcome(rows: 1, requests: fetched.requests + shares.requests)
            }
            let progress = runner.progress
            var result = BatchResult(task: name, symbols: progress.counts, rowsWritten: progress.rowsWritten,
                                     requests: progress.requests, seconds: elapsedSeconds(since: start), attempt: context.attempt)
            result.float = float.outcome
            return result
        }
    }

    /// The symbols to enrich, in priority order: no metadata or no market cap, then no sector,
    /// then stale; ties by oldest update, then symbol.
    static func candidates(_ connection: PostgresConnection, limit: Int, staleDays: Int, missingRetryHours: Int) async throws -> [String] {
        let rows = try await connection.query("""
            SELECT u.symbol
              FROM ticker_universe u
              LEFT JOIN ticker_metadata m ON m.symbol = u.symbol
             WHERE u.active
               AND (m.symbol IS NULL
                    OR ((m.market_cap IS NULL OR m.sector IS NULL) AND m.updated_at < now() - make_interval(hours => $3))
                    OR m.updated_at < now() - make_interval(days => $2))
             ORDER BY CASE WHEN m.symbol IS NULL OR m.market_cap IS NULL THEN 0
                           WHEN m.sector IS NULL THEN 1 ELSE 2 END,
                      m.updated_at NULLS FIRST, u.symbol
             LIMIT $1
            """, [limit, staleDays, missingRetryHours])
        return try rows.map { try $0.decode("symbol", as: String.self) }
    }
}

/// `volume_stats`: recomputes `ticker_volume_stats` from `market_data_daily` in one statement
/// (see `MarketDataWriter.refreshVolumeStats`). Needs no data source.
public struct VolumeStatsTask: JobTask {
    /// `volume_stats`: its arguments and summary (the `maintenance_task_types` row).
    public static let declaration = TaskDeclaration(
        name: "volume_stats", arguments: ["symbols": .stringArray],
        summary: "Average daily volume over the newest 5/10/30/50 daily bars of each symbol.")

    /// Creates the task.
    public init() {}

    struct Args: Decodable { var symbols: [String]? }

    /// The `volume_stats` task's result.
    public struct Result: TaskResult {
        var symbolsWritten: Int
        var seconds: Double
        enum CodingKeys: String, CodingKey {
            case seconds
            case symbolsWritten = "symbols_written"
        }
    }

    /// Recomputes the statistics.
    public func run(_ context: JobContext) async throws -> Result {
        let start = ContinuousClock.now
        let args = try arguments(Args.self, of: context)
        return try await withJobConnection(context) { connection in
            let written = try await connection.withSession { try MarketDataWriter.refreshVolumeStats(symbols: args.symbols, session: $0) }
            return Result(symbolsWritten: written, seconds: elapsedSeconds(since: start))
        }
    }
}

/// `universe_sync`: adds the API's active common stocks missing from `ticker_universe`, with
/// source 'polygon'. Never deletes or deactivates a row (a user's choices stand).
public struct UniverseSyncTask: JobTask {
    /// `universe_sync`: its arguments and summary (the `maintenance_task_types` row).
    public static let declaration = TaskDeclaration(
        name: "universe_sync", arguments: ["limit": .integer],
        summary: "Adds active common stocks from the API to ticker_universe (never deletes).")
    let source: any MarketDataSource
    let settings: MarketDataSettings

    /// Creates the task around a shared data source.
    public init(source: any MarketDataSource, settings: MarketDataSettings = MarketDataSettings()) {
        self.source = source
        self.settings = settings
    }

    struct Args: Decodable { var limit: Int? }

    /// The `universe_sync` task's result.
    public struct Result: TaskResult {
        var fetched: Int
        var added: Int
        var requests: Int
        var seconds: Double
    }

    /// Adds the missing symbols.
    public func run(_ context: JobContext) async throws -> Result {
        let start = ContinuousClock.now
        let args = try arguments(Args.self, of: context)
        try context.checkCancellation()
        let fetched = try await source.activeCommonStocks(limit: args.limit)
        return try await withJobConnection(context) { connection in
            let added = try await connection.withSession { session in
                try SampleUniverse.insertMissing(fetched.value, source: "polygon", session: session)
            }
            return Result(fetched: fetched.value.count, added: added, requests: fetched.requests,
                          seconds: elapsedSeconds(since: start))
        }
    }
}
