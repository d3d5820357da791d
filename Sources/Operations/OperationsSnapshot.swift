import Foundation
import JobQueue
import Toolkit
import PostgresClient

/// Everything `/status`, `/metrics` and the dashboard show from the database, read
/// in one round of short queries and cached for `http.cache_seconds`.
struct OperationsSnapshot {
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

    struct CycleRunRow {
        var runID: Int64
        var cycle: String
        var period: String
        var state: String
        var startedAt: String?
        var finishedAt: String?
        var tasks: [TaskOutcome]
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

        var runs: [CycleRunRow] = []
        for row in try session.query(
            """
            SELECT r.id, r.cycle, r.period::text AS period, r.state,
                   \(OpsFormat.isoSQL("r.started_at")) AS started_at, \(OpsFormat.isoSQL("r.finished_at")) AS finished_at,
                   (SELECT coalesce(jsonb_agg(jsonb_build_object(
                               'job_id', j.id, 'task', j.task, 'state', j.state,
                               'seconds', extract(epoch FROM j.finished_at - j.started_at),
                               'rows', coalesce(CASE WHEN jsonb_typeof(j.result -> 'rows_written') = 'number' THEN (j.result ->> 'rows_written')::numeric END,
                                                CASE WHEN jsonb_typeof(j.result -> 'total_rows_removed') = 'number' THEN (j.result ->> 'total_rows_removed')::numeric END,
                                                CASE WHEN jsonb_typeof(j.result -> 'rows') = 'number' THEN (j.result ->> 'rows')::numeric END),
                               'error', CASE WHEN jsonb_typeof(j.errors) = 'array' THEN j.errors -> -1 ->> 'error' END)
                             ORDER BY j.id), '[]')::text
                      FROM maintenance_jobs j WHERE j.run_id = r.id) AS tasks
              FROM (SELECT *, row_number() OVER (PARTITION BY cycle ORDER BY started_at DESC, id DESC) AS n FROM maintenance_cycle_runs) r
             WHERE r.n <= $1
             ORDER BY r.started_at DESC, r.id DESC
            """, [runsPerCycle]) {
            let tasks = (OpsFormat.parse(row["tasks"]) as? [[String: Any]] ?? []).map { t in
                TaskOutcome(jobID: (t["job_id"] as? NSNumber)?.int64Value ?? 0, task: t["task"] as? String ?? "?",
                            state: t["state"] as? String ?? "?", seconds: (t["seconds"] as? NSNumber)?.doubleValue,
                            rows: (t["rows"] as? NSNumber)?.doubleValue, error: (t["error"] as? String).map { Redactor.summary($0) })
            }
            runs.append(CycleRunRow(
                runID: try row.decode("id"), cycle: try row.decode("cycle"), period: try row.decode("period"), state: try row.decode("state"),
                startedAt: row["started_at"], finishedAt: row["finished_at"], tasks: tasks))
        }

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
            for row in try session.query(
                """
                SELECT task,
                       coalesce(sum((result ->> 'rows_written')::numeric) FILTER (WHERE jsonb_typeof(result -> 'rows_written') = 'number'), 0)::float8 AS written,
                       coalesce(sum((result ->> 'total_rows_removed')::numeric) FILTER (WHERE jsonb_typeof(result -> 'total_rows_removed') = 'number'), 0)::float8 AS removed
                  FROM maintenance_jobs
                 WHERE state = $3 AND finished_at > $1 AND finished_at <= $2 AND jsonb_typeof(result) = 'object'
                 GROUP BY task
                """, [from, until, JobState.succeeded]) {
                let task: String = try row.decode("task")
                let written: Double = try row.decode("written")
                if written > 0 || TableNames.written[task] != nil { s.totals.written[task, default: 0] += written }
                s.totals.removed += try row.decode("removed", as: Double.self)
            }
            s.watermark = until
            return s.totals
        }
    }
}
