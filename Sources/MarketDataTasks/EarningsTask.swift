import Foundation
import Toolkit
import JobQueue
import PostgresClient

/// `earnings`: earnings announcements from the Benzinga earnings calendar, one request per
/// symbol for the window `days_back` before today through `days_ahead` after it (New York).
///
/// Like the nightly thread it replaces, it fetches only symbols that need it: active universe
/// symbols (or `symbols`) with no announcement dated today or later in `ticker_earnings`
/// (never fetched, or their known date has passed). `force` fetches them all. A plan without the
/// endpoint (403 on the first requests) ends the job succeeded with `{"skipped": true, "reason":
/// …}`: one request per run at most `concurrency` in flight, no retries.
public struct EarningsTask: JobTask {
    /// `earnings`: its arguments and summary (the `maintenance_task_types` row).
    public static let declaration = TaskDeclaration(
        name: "earnings", arguments: ["symbols": .stringArray, "force": .boolean, "days_ahead": .integer, "days_back": .integer, "concurrency": .integer],
        summary: "Earnings dates (Benzinga) for active symbols with no future date or a past one; skipped when the plan lacks the endpoint.",
        reports: [.rowsWritten])
    let source: any MarketDataSource
    let settings: MarketDataSettings

    /// Creates the task around a shared data source.
    public init(source: any MarketDataSource, settings: MarketDataSettings = MarketDataSettings()) {
        self.source = source
        self.settings = settings
    }

    struct Args: Decodable {
        var symbols: [String]?
        var force: Bool?
        var daysAhead: Int?
        var daysBack: Int?
        var concurrency: Int?
        enum CodingKeys: String, CodingKey {
            case symbols, force, concurrency
            case daysAhead = "days_ahead", daysBack = "days_back"
        }
    }

    /// The `earnings` task's result.
    public struct Result: TaskResult {
        var task = "earnings"
        var from: CivilDate
        var to: CivilDate
        var candidates: Int
        var symbols: UnitCounts?
        var rowsWritten: Int
        var requests: Int
        var skipped: Bool?
        var reason: String?
        var seconds: Double
        var attempt: Int
        enum CodingKeys: String, CodingKey {
            case task, from, to, candidates, symbols, requests, skipped, reason, seconds, attempt
            case rowsWritten = "rows_written"
        }
    }

    /// Fetches the earnings dates of the candidates.
    public func run(_ context: JobContext) async throws -> Result {
        let start = ContinuousClock.now
        let args = try arguments(Args.self, of: context)
        let daysAhead = args.daysAhead ?? settings.earningsDaysAhead
        let daysBack = args.daysBack ?? settings.earningsDaysBack
        guard (0...3660).contains(daysAhead), (0...3660).contains(daysBack) else {
            throw InvalidJobArguments(task: name, reason: "\"days_ahead\" and \"days_back\" must be 0...3660")
        }
        try MarketDataArguments.checkConcurrency(args.concurrency, task: name)
        let previous = BatchProgress.resume(context.previousProgress, task: name, logger: context.logger)
        let today = NewYorkTime.today()
        let window = previous?.range ?? DateRange(from: today.adding(days: -daysBack), to: today.adding(days: daysAhead))
        return try await withJobConnection(context) { connection in
            let symbols = try await Self.candidates(connection, explicit: args.symbols, force: args.force ?? false, today: today)
            var runner = BatchRunner(context: context, settings: settings, source: source,
                                     progress: previous ?? BatchProgress(task: name, from: window.from, to: window.to))
            let source = self.source
            let notEntitled = LockedBox<String?>(nil)
            do {
                try await runner.run(units: symbols, concurrency: args.concurrency ?? settings.concurrency) { symbol in
                    let fetched: Fetched<[EarningsEvent]>
                    do {
                        fetched = try await source.earnings(symbol: symbol, from: window.from, to: window.to)
                    } catch where source.isNotEntitled(error) {
                        notEntitled.set(source.describe(error))
                        throw error
                    }
                    let events = fetched.value
                    let written = try await connection.withSession {
                        try MarketDataStore.replaceEarnings(symbol: symbol, from: window.from, to: window.to, events: events, session: $0)
                    }
                    return UnitOutcome(rows: written, requests: fetched.requests, empty: events.isEmpty)
                }
            } catch let failure as MarketDataBatchFailed {
                guard let reason = notEntitled.value else { throw failure }
                context.logger.warning("earnings_skipped", metadata: ["reason": "\(reason)"])
                return Result(from: window.from, to: window.to, candidates: symbols.count, rowsWritten: 0,
                              requests: runner.progress.requests, skipped: true,
                              reason: "the API plan does not include the Benzinga earnings endpoint: \(reason)",
                              seconds: elapsedSeconds(since: start), attempt: context.attempt)
            }
            let progress = runner.progress
            return Result(from: window.from, to: window.to, candidates: symbols.count, symbols: progress.counts,
                          rowsWritten: progress.rowsWritten, requests: progress.requests,
                          seconds: elapsedSeconds(since: start), attempt: context.attempt)
        }
    }

    /// The symbols to fetch: `explicit` (else the active universe), keeping, unless `force`,
    /// those without an announcement dated `today` or later.
    static func candidates(_ connection: PostgresConnection, explicit: [String]?, force: Bool, today: CivilDate) async throws -> [String] {
        if let explicit, explicit.contains(where: { $0.isEmpty || $0.count > 32 || $0.contains(where: \.isWhitespace) }) {
            throw InvalidJobArguments(task: "earnings", reason: "\"symbols\" must be non-empty ticker symbols without spaces")
        }
        let rows = try await connection.query("""
            SELECT s.symbol
              FROM (SELECT DISTINCT unnest($1::text[]) AS symbol WHERE $1::text[] IS NOT NULL
                    UNION ALL
                    SELECT symbol FROM ticker_universe WHERE active AND $1::text[] IS NULL) s
             WHERE $2 OR NOT EXISTS (SELECT 1 FROM ticker_earnings e WHERE e.symbol = s.symbol AND e.date >= $3::date)
             ORDER BY s.symbol
            """, [explicit, force, today.description])
        return try rows.map { try $0.decode("symbol", as: String.self) }
    }
}
