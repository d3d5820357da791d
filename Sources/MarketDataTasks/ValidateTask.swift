import Foundation
import Toolkit
import JobQueue
import PostgresClient

/// `validate`: moves rows that break an invariant from `market_data_daily` (zero or NULL
/// price, high below max(open, close), low above min(open, close), negative volume, a date that
/// is not an NYSE trading day) and `volume_slots` (slot outside 0-191, negative volume,
/// non-trading day) into `market_data_quarantine`, with the reasons (SQL functions
/// `market_data_daily_problems` and `volume_slot_problems`). Rows dated within the last `days`
/// (default 30; 0 checks whole tables). Each table is one short statement (DELETE … RETURNING
/// into the quarantine), so a row is never lost between the two. `dry_run` only counts.
/// Duplicates need no check: the primary keys make them impossible.
public struct ValidateTask: JobTask {
    /// `validate`: its arguments and summary (the `maintenance_task_types` row).
    public static let declaration = TaskDeclaration(
        name: "validate", arguments: ["days": .integer, "tables": .stringArray, "dry_run": .boolean],
        summary: "Moves bars and slots that break invariants (prices, volume, calendar, slot range) into market_data_quarantine.")
    let settings: MarketDataSettings

    /// Creates the task (it needs no data source).
    public init(settings: MarketDataSettings = MarketDataSettings()) {
        self.settings = settings
    }

    struct Args: Decodable {
        var days: Int?
        var tables: [String]?
        var dryRun: Bool?
        enum CodingKeys: String, CodingKey {
            case days, tables
            case dryRun = "dry_run"
        }
    }

    /// What was found in one table.
    struct TableOutcome: Codable {
        var checked: Int
        var quarantined: Int
        var reasons: [String: Int]
    }

    /// The `validate` task's result.
    public struct Result: TaskResult {
        var task = "validate"
        var since: CivilDate?
        var dryRun: Bool
        var tables: [String: TableOutcome]
        var quarantined: Int
        var seconds: Double
        enum CodingKeys: String, CodingKey {
            case task, since, tables, quarantined, seconds
            case dryRun = "dry_run"
        }
    }

    static let checks: [String: (problems: String, key: String)] = [
        "market_data_daily": ("market_data_daily_problems(t.open, t.high, t.low, t.close, t.volume, t.date)", "t.symbol, t.date"),
        "volume_slots": ("volume_slot_problems(t.slot_index, t.volume, t.date)", "t.symbol, t.date, t.slot_index"),
    ]

    /// Moves the invalid rows of the window into the quarantine (or only counts them: `dry_run`).
    public func run(_ context: JobContext) async throws -> Result {
        let start = ContinuousClock.now
        let args = try arguments(Args.self, of: context)
        let days = args.days ?? settings.validateDays
        guard (0...3660).contains(days) else { throw InvalidJobArguments(task: name, reason: "\"days\" must be 0...3660, got \(days)") }
        let tables = args.tables ?? Self.checks.keys.sorted()
        if let unknown = tables.first(where: { Self.checks[$0] == nil }) {
            throw InvalidJobArguments(task: name, reason: "unknown table \"\(unknown)\" (validate checks market_data_daily and volume_slots)")
        }
        let since = days > 0 ? NewYorkTime.today().adding(days: -days) : nil
        let dryRun = args.dryRun ?? false
        return try await withJobConnection(context) { connection in
            var outcomes: [String: TableOutcome] = [:]
            for table in Array(Set(tables)).sorted() {
                try context.checkCancellation()
                outcomes[table] = try await Self.validate(table, since: since, dryRun: dryRun, connection: connection)
            }
            return Result(since: since, dryRun: dryRun, tables: outcomes,
                          quarantined: outcomes.values.reduce(0) { $0 + $1.quarantined },
                          seconds: elapsedSeconds(since: start))
        }
    }

    /// Checks one table; moves (or, on a dry run, counts) its invalid rows.
    static func validate(_ table: String, since: CivilDate?, dryRun: Bool, connection: PostgresConnection) async throws -> TableOutcome {
        let check = checks[table]!
        let window = "($1::date IS NULL OR t.date >= $1::date)"
        let checked = try await connection.query("SELECT count(*)::int AS n FROM \(table) t WHERE \(window)",
                                                 [since?.description]).first?.decode("n", as: Int.self) ?? 0
        let found: PostgresRows
        if dryRun {
            found = try await connection.query("""
                SELECT reason, count(*)::int AS n
                  FROM (SELECT \(check.problems) AS reason FROM \(table) t WHERE \(window)) p
                 WHERE reason IS NOT NULL GROUP BY reason
                """, [since?.description])
        } else {
            let slot = table == "volume_slots" ? "moved.slot_index" : "NULL::smallint"
            found = try await connection.query("""
                WITH bad AS (
                    SELECT \(check.key), \(check.problems) AS reason FROM \(table) t WHERE \(window)
                ), moved AS (
                    DELETE FROM \(table) t USING bad b
                     WHERE b.reason IS NOT NULL AND (\(check.key)) = (\(check.key.replacingOccurrences(of: "t.", with: "b.")))
                    RETURNING t.*, b.reason AS closebell_reason
                ), stored AS (
                    INSERT INTO market_data_quarantine AS q (table_name, symbol, date, slot_index, reason, row_data)
                    SELECT '\(table)', moved.symbol, moved.date, \(slot), moved.closebell_reason,
                           to_jsonb(moved) - 'closebell_reason'
                      FROM moved
                    ON CONFLICT (table_name, symbol, date, coalesce(slot_index, -1)) DO UPDATE
                       SET reason = EXCLUDED.reason, row_data = EXCLUDED.row_data, times = q.times + 1,
                           quarantined_at = now()
                    RETURNING q.reason
                )
                SELECT reason, count(*)::int AS n FROM stored GROUP BY reason
                """, [since?.description])
        }
        var reasons: [String: Int] = [:]
        for row in found { reasons[try row.decode("reason")] = try row.decode("n", as: Int.self) }
        return TableOutcome(checked: checked, quarantined: reasons.values.reduce(0, +), reasons: reasons)
    }
}
