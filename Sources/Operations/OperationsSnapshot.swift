import Foundation
import JobQueue
import Toolkit
import PostgresClient

/// Everything `/status`, `/metrics` and the dashboard show from the database, read
/// in one round of short queries and cached for `http.cache_seconds`.
struct OperationsSnapshot: Sendable {
    /// Queue depth, running jobs, the last run of each cycle, counters.
    var queue: QueueSnapshot
    /// Jobs that failed for good, were cancelled, or wait for a retry: retrying first, then newest.
    var failures: [FailureRow]
    /// The next jobs waiting to run (`available`), soonest first.
    var waiting: [WaitingRow]
    /// The last few runs of each cycle with every task's outcome.
    var runs: [CycleRunRow]
    /// Every cycle name (for the dashboard's trigger form).
    var cycleNames: [String]
    /// The newest recorded size of each table with its growth over 30 days.
    var tables: [TableRow]
    /// `pg_database_size` now.
    var databaseBytes: Int64
    /// Rows written and removed since the endpoint started (see `RowCounters`).
    var rows: RowCounters.Totals
    /// The newest succeeded backup job's end (any worker, any host).
    var newestBackupJob: Date?

    struct FailureRow {
        var id: Int64
        var task: String
        var state: String
        var attempts: Int
        var maxAttempts: Int
        var at: String?
        var error: String
        var runID: Int64?
    }

    struct WaitingRow {
        var id: Int64
        var task: String
        var queue: String
        var priority: Int
        var runAt: String?
        var attempts: Int
        var runID: Int64?
    }

    struct TaskOutcome {
        var jobID: Int64
        var task: String
        var state: String
        var seconds: Double?
        var rows: Double?
        var error: String?
    }

    struct TableRow {
        var table: String
        var recordedOn: String
        var totalBytes: Int64
        var indexBytes: Int64
        var rowEstimate: Int64
        /// Growth of `totalBytes` since the oldest record of the last 30 days (nil without one).
        var growthBytes: Int64?
        var growthDays: Int?
    }

    static func read(_ session: PostgresSession, runningLimit: Int, runsPerCycle: Int, counters: RowCounters) throws -> OperationsSnapshot {
        let queue = try QueueSnapshot.read(session, runningLimit: runningLimit)

        let failures = queue.status.failures.map { job in
            FailureRow(id: job.id, task: job.task, state: job.state.rawValue, attempts: job.attempts, maxAttempts: job.maxAttempts,
                       at: OpsFormat.iso(job.finishedAt ?? job.createdAt), error: Redactor.summary(job.error), runID: job.runID)
        }
        let waiting = queue.status.waiting.map { job in
            WaitingRow(id: job.id, task: job.task, queue: job.queue, priority: job.priority, runAt: OpsFormat.iso(job.runAt),
                       attempts: job.attempts, runID: job.runID)
        }

        let runs = try CycleRunRow.read(session, """
            SELECT \(CycleRunRow.columns)
              FROM (SELECT *, row_number() OVER (PARTITION BY cycle ORDER BY started_at DESC, id DESC) AS n FROM maintenance_cycle_runs) r
             WHERE r.n <= $1
             ORDER BY r.started_at DESC, r.id DESC
            """, [runsPerCycle])

        let cycleNames = try session.query("SELECT cycle FROM maintenance_cycles ORDER BY cycle").map { try $0.decode("cycle", as: String.self) }

        var tables: [TableRow] = []
        for row in try session.query(
            """
            SELECT DISTINCT ON (s.table_name) s.table_name, s.recorded_on::text AS recorded_on, s.total_bytes, s.index_bytes, s.row_estimate,
                   s.total_bytes - o.total_bytes AS growth, s.recorded_on - o.recorded_on AS growth_days
              FROM maintenance_table_sizes s
              LEFT JOIN LATERAL (SELECT total_bytes, recorded_on FROM maintenance_table_sizes p
                                  WHERE p.table_name = s.table_name AND p.recorded_on >= s.recorded_on - 30 AND p.recorded_on < s.recorded_on
                                  ORDER BY p.recorded_on LIMIT 1) o ON true
             ORDER BY s.table_name, s.recorded_on DESC
            """) {
            tables.append(TableRow(
                table: try row.decode("table_name"), recordedOn: try row.decode("recorded_on"), totalBytes: try row.decode("total_bytes"),
                indexBytes: try row.decode("index_bytes"), rowEstimate: try row.decode("row_estimate"),
                growthBytes: try row.decodeIfPresent("growth"), growthDays: try row.decodeIfPresent("growth_days")))
        }
        tables.sort { $0.totalBytes > $1.totalBytes }

        let databaseBytes: Int64 = try session.query("SELECT pg_database_size(current_database()) AS b").first?.decode("b") ?? 0
        let newestBackupJob = try QueueStore.lastSucceeded(session, task: "backup")
        let rows = try counters.advance(session)
        return OperationsSnapshot(queue: queue, failures: failures, waiting: waiting, runs: runs, cycleNames: cycleNames, tables: tables,
                                  databaseBytes: databaseBytes, rows: rows, newestBackupJob: newestBackupJob)
    }
}

/// Rows written by loading tasks and removed by retention, summed over the jobs (of any
/// worker) that succeeded since this endpoint started: Prometheus counters, which only grow
/// and start again from 0 when the process restarts.
///
/// Each read adds the jobs that finished between the last watermark and `now() - lag`; the
/// lag leaves time for a completion to commit, so no job is counted twice or skipped.
final class RowCounters: Sendable {
    struct Totals: Sendable {
        /// Rows written by task.
        var written: [String: Double] = [:]
        /// Rows removed by retention.
        var removed = 0.0
    }

    private struct State {
        var watermark: Date?
        var totals = Totals()
    }

    private let state = LockedBox(State())
    private let lagSeconds: Double

    init(lagSeconds: Double = 10) {
        self.lagSeconds = lagSeconds
    }

    /// Adds the jobs finished since the last call and returns the totals.
    func advance(_ session: PostgresSession) throws -> Totals {
        try state.withLock { s in
            let until: Date = try session.query("SELECT now() - make_interval(secs => $1) AS t", [lagSeconds]).first?.decode("t") ?? Date()
            guard let from = s.watermark else {
                // The first read sets the start: counters cover what finishes from now on.
                s.watermark = until
                return s.totals
            }
            guard until > from else { return s.totals }
            for row in try QueueStore.rowTotals(session, finishedAfter: from, through: until) {
                if row.rowsWritten > 0 || TableNames.written[row.task] != nil { s.totals.written[row.task, default: 0] += row.rowsWritten }
                s.totals.removed += row.rowsRemoved
            }
            s.watermark = until
            return s.totals
        }
    }
}
