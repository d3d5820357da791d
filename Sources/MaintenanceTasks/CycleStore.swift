import Foundation
import PostgresClient
import JobQueue

/// One run of a cycle, as recorded in `maintenance_cycle_runs`, with its jobs counted by state.
public struct CycleRun: Sendable, Equatable {
    /// `maintenance_cycle_runs.id` (the jobs' `run_id`).
    public var id: Int64
    /// The cycle's name.
    public var cycle: String
    /// The period's first day, `YYYY-MM-DD` (trading date, Monday of the ISO week, 1st of month).
    public var period: String
    /// `running`, `succeeded`, `partial`, `failed` or `cancelled`.
    public var state: String
    /// The stage whose jobs were enqueued last.
    public var currentStage: Int?
    /// When the run was enqueued.
    public var startedAt: Date
    /// When its last job finished.
    public var finishedAt: Date?
    /// The run's jobs waiting (`available`), `running`, `succeeded`, `failed` and `cancelled`.
    public var jobCounts: [String: Int]
    /// The outcome JSON text (counts, skipped tasks, each task's state and result), once finished.
    public var outcomeJSON: String?
}

/// Enqueues cycle runs and reads their history (what `closebell enqueue --cycle` and
/// `closebell status` use).
public enum CycleStore {
    /// Enqueues one run of `cycle` for the current period (or the period containing `period`,
    /// `YYYY-MM-DD`) through `maintenance_enqueue_cycle`. Idempotent: for a period that already
    /// has a run, returns that run's id with `created == false` and enqueues nothing.
    ///
    /// Throws `MaintenanceError.unknownCycle` for a name the database does not know, and
    /// `MaintenanceError.cycleNotEnqueued` when the day is not an NYSE trading day (daily
    /// cycle), the cycle is disabled, or today's run of a trading_day/day cycle is not due yet
    /// (before its local_time, judged at `at`, default now); `force` enqueues anyway.
    public static func enqueue(
        cycle: String, period: String? = nil, force: Bool = false, at: Date? = nil, connection: PostgresConnection
    ) async throws -> (runID: Int64, created: Bool) {
        let rows: PostgresRows
        do {
            rows = try await connection.query(
                "SELECT run_id, created, period::text AS period, note FROM maintenance_enqueue_cycle($1, $2::date, $3, coalesce($4::timestamptz, now()))",
                [cycle, period, force, at])
        } catch let error as PostgresError where error.sqlState == "22023" && error.message.hasPrefix("unknown cycle") {
            let known = (error.hint ?? "").replacingOccurrences(of: "known cycles: ", with: "")
                .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            throw MaintenanceError.unknownCycle(name: cycle, known: known)
        }
        guard let row = rows.first else { throw MaintenanceError.unknownCycle(name: cycle, known: []) }
        guard let runID: Int64 = try row.decodeIfPresent("run_id") else {
            throw MaintenanceError.cycleNotEnqueued(
                cycle: cycle, period: row["period"] ?? "?", reason: row["note"] ?? "not enqueued")
        }
        return (runID, try row.decode("created"))
    }

    /// The newest runs first, optionally of one cycle.
    public static func recentRuns(connection: PostgresConnection, cycle: String? = nil, limit: Int = 20) async throws -> [CycleRun] {
        let rows = try await connection.query(
            """
            SELECT r.id, r.cycle, r.period::text AS period, r.state, r.current_stage, r.started_at, r.finished_at,
                   r.outcome::text AS outcome
              FROM maintenance_cycle_runs r
             WHERE $1::text IS NULL OR r.cycle = $1
             ORDER BY r.started_at DESC, r.id DESC
             LIMIT $2
            """, [cycle, max(0, limit)])
        let runIDs = try rows.map { try $0.decode("id", as: Int64.self) }
        let jobCounts = try await connection.withSession { try QueueStore.runJobCounts($0, runIDs: runIDs) }
        return try rows.map { row in
            let id: Int64 = try row.decode("id")
            let counts = Dictionary(uniqueKeysWithValues: (jobCounts[id] ?? [:]).map { ($0.key.rawValue, $0.value) })
            return CycleRun(
                id: id, cycle: try row.decode("cycle"), period: try row.decode("period"),
                state: try row.decode("state"), currentStage: try row.decodeIfPresent("current_stage"),
                startedAt: try row.decode("started_at"), finishedAt: try row.decodeIfPresent("finished_at"),
                jobCounts: counts, outcomeJSON: row["outcome"])
        }
    }

    /// Cancels a run: no further stage starts and its waiting or running jobs are cancelled.
    /// Returns how many jobs were cancelled.
    @discardableResult
    public static func cancel(runID: Int64, connection: PostgresConnection) async throws -> Int {
        try await connection.query("SELECT maintenance_cancel_cycle_run($1) AS n", [runID]).first?.decode("n") ?? 0
    }

    /// True when NYSE trades on `day` (`YYYY-MM-DD`): overrides first, then the holiday rules.
    public static func isTradingDay(_ day: String, connection: PostgresConnection) async throws -> Bool {
        try await connection.query("SELECT maintenance_is_trading_day($1::date) AS trading", [day]).first?.decode("trading") ?? false
    }
}

/// A run the scheduler enqueued (or found enqueued by another scheduler at the same moment).
public struct EnqueuedRun: Sendable, Equatable {
    /// The cycle's name.
    public var cycle: String
    /// The period's first day, `YYYY-MM-DD`.
    public var period: String
    /// The run's id.
    public var runID: Int64
    /// False when another process created the run between the check and the insert.
    public var created: Bool
}

/// Starts cycle runs when their time comes: `closebell worker --schedule` calls `tick` when it
/// starts and every `schedule.interval_seconds` after.
///
/// Each enabled cycle whose start time in its current period has passed and which has no run
/// for that period is enqueued (`maintenance_enqueue_due_cycles`). A run missed while every
/// worker was down is started on the next tick in the same period (today's daily run after
/// 17:00, this week's weekly run), and the missing runs of the cycle's `catch_up_periods`
/// earlier periods are caught up first (daily: 1, the previous trading day); periods further
/// back are never backfilled, nor any before the cycle's first run. The daily cycle only
/// runs on NYSE trading days. Idempotence comes from the runs table's UNIQUE (cycle, period),
/// so any number of workers can tick without electing a leader.
public struct CycleScheduler: Sendable {
    /// Creates a scheduler (it holds no state: the runs table is the state).
    public init() {}

    /// Enqueues the cycles due at `now`; returns what was enqueued.
    public func tick(connection: PostgresConnection, now: Date = Date()) async throws -> [EnqueuedRun] {
        let rows = try await connection.query(
            "SELECT cycle, period::text AS period, run_id, created FROM maintenance_enqueue_due_cycles($1::timestamptz)", [now])
        return try rows.compactMap { row in
            guard let runID: Int64 = try row.decodeIfPresent("run_id") else { return nil }
            return EnqueuedRun(cycle: try row.decode("cycle"), period: try row.decode("period"), runID: runID, created: try row.decode("created"))
        }
    }
}
