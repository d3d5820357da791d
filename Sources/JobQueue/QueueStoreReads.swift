import Foundation
import PostgresClient

/// The queue's reads for the report, the alerts, the endpoint, the cycle views and the demo:
/// every statement on `maintenance_jobs` outside the worker's own lives in `QueueStore`, with a
/// typed result. Result figures are read under their `ResultField` keys, and only when they
/// hold a JSON number.
extension QueueStore {
    /// Subscribes `session` to the notification every INSERT into the queue sends (and
    /// `wakeWorkers`): what idle workers wait for.
    public static func listen(_ session: PostgresSession) throws {
        try session.listen("maintenance_jobs")
    }

    /// Wakes idle workers at once (they also poll): after outcomes made jobs available again.
    public static func wakeWorkers(_ session: PostgresSession) throws {
        _ = try session.query("SELECT pg_notify('maintenance_jobs', '')")
    }

    /// The jobs of the cycle runs `runIDs` (pruned jobs are gone), by run, then id.
    public static func runJobs(_ session: PostgresSession, runIDs: [Int64]) throws -> [FinishedJob] {
        guard !runIDs.isEmpty else { return [] }
        return try jobs(session, where: "run_id = ANY($1::bigint[])", order: "run_id, id", [runIDs])
    }

    /// Jobs of each cycle run among `runIDs` by state (runs without jobs are left out).
    public static func runJobCounts(_ session: PostgresSession, runIDs: [Int64]) throws -> [Int64: [JobState: Int]] {
        guard !runIDs.isEmpty else { return [:] }
        var counts: [Int64: [JobState: Int]] = [:]
        for row in try session.query(
            "SELECT run_id, state, count(*)::bigint AS n FROM maintenance_jobs WHERE run_id = ANY($1::bigint[]) GROUP BY run_id, state",
            [runIDs]) {
            counts[try row.decode("run_id"), default: [:]][try row.decode("state", as: JobState.self)] = Int(try row.decode("n", as: Int64.self))
        }
        return counts
    }

    /// Jobs that failed for good after `after` and up to `through`, oldest first, at most `limit`.
    public static func failedJobs(_ session: PostgresSession, finishedAfter after: Date, through: Date, limit: Int) throws -> [FinishedJob] {
        try jobs(session, where: "state = $3 AND finished_at > $1 AND finished_at <= $2", order: "finished_at, id LIMIT $4",
                 [after, through, JobState.failed, max(0, limit)])
    }

    /// Jobs of `task` that succeeded from `from` until before `before`, oldest first.
    public static func succeededJobs(_ session: PostgresSession, task: String, finishedFrom from: Date, before: Date) throws -> [FinishedJob] {
        try jobs(session, where: "task = $3 AND state = $4 AND finished_at >= $1 AND finished_at < $2", order: "finished_at, id",
                 [from, before, task, JobState.succeeded])
    }

    /// Per task, the jobs that succeeded or failed for good from `from` until before `before`:
    /// counts, mean duration of the successes, rows and bytes freed.
    public static func taskTotals(_ session: PostgresSession, finishedFrom from: Date, before: Date) throws -> [TaskTotals] {
        let rows = "coalesce(\(number(.rowsWritten, "::numeric::bigint")), \(number(.totalRowsRemoved, "::numeric::bigint")))"
        return try session.query(
            """
            SELECT task, count(*)::bigint AS jobs, count(*) FILTER (WHERE state = $3)::bigint AS ok,
                   count(*) FILTER (WHERE state = $4)::bigint AS failed,
                   avg(extract(epoch FROM finished_at - started_at)) FILTER (WHERE state = $3)::float8 AS avg,
                   coalesce(sum(\(rows)), 0)::bigint AS rows,
                   coalesce(sum(\(number(.bytesFreed, "::numeric::bigint"))), 0)::bigint AS freed
              FROM maintenance_jobs
             WHERE state IN ($3, $4) AND finished_at >= $1 AND finished_at < $2
             GROUP BY task
             ORDER BY task
            """, [from, before, JobState.succeeded, JobState.failed]).map { row in
            TaskTotals(
                task: try row.decode("task"), jobs: Int(try row.decode("jobs", as: Int64.self)),
                succeeded: Int(try row.decode("ok", as: Int64.self)), failed: Int(try row.decode("failed", as: Int64.self)),
                averageSeconds: try row.decodeIfPresent("avg"), rows: try row.decode("rows"), bytesFreed: try row.decode("freed"))
        }
    }

    /// Per task, the rows written (`rows_written`) and removed (`total_rows_removed`) by the jobs
    /// that succeeded after `after` and up to `through`.
    public static func rowTotals(_ session: PostgresSession, finishedAfter after: Date, through: Date) throws -> [TaskRowTotals] {
        try session.query(
            """
            SELECT task,
                   coalesce(sum(\(number(.rowsWritten, "::numeric"))), 0)::float8 AS written,
                   coalesce(sum(\(number(.totalRowsRemoved, "::numeric"))), 0)::float8 AS removed
              FROM maintenance_jobs
             WHERE state = $3 AND finished_at > $1 AND finished_at <= $2 AND jsonb_typeof(result) = 'object'
             GROUP BY task
            """, [after, through, JobState.succeeded]).map { row in
            TaskRowTotals(task: try row.decode("task"), rowsWritten: try row.decode("written"), rowsRemoved: try row.decode("removed"))
        }
    }

    /// The selected jobs with their durations, last errors and result figures.
    private static func jobs(_ session: PostgresSession, where condition: String, order: String,
                             _ parameters: [any PostgresBindable]) throws -> [FinishedJob] {
        try session.query(
            """
            SELECT id, run_id, task, state, attempts, max_attempts, started_at, finished_at,
                   extract(epoch FROM finished_at - started_at)::float8 AS seconds,
                   CASE WHEN jsonb_typeof(errors) = 'array' THEN errors -> -1 ->> 'error' END AS last_error,
                   result::text AS result, result ->> '\(ResultField.path.rawValue)' AS path,
                   \(number(.rowsWritten, "::float8")) AS rows_written, \(number(.totalRowsRemoved, "::float8")) AS rows_removed,
                   \(number(.rows, "::float8")) AS rows, \(number(.bytesFreed, "::float8")) AS bytes_freed,
                   \(number(.bytes, "::numeric::bigint")) AS bytes, \(number(.seconds, "::float8")) AS result_seconds
              FROM maintenance_jobs
             WHERE \(condition)
             ORDER BY \(order)
            """, parameters).map { row in
            FinishedJob(
                id: try row.decode("id"), runID: try row.decodeIfPresent("run_id"), task: try row.decode("task"),
                state: try row.decode("state"), attempts: try row.decode("attempts"), maxAttempts: try row.decode("max_attempts"),
                startedAt: try row.decodeIfPresent("started_at"), finishedAt: try row.decodeIfPresent("finished_at"),
                seconds: try row.decodeIfPresent("seconds"), lastError: row["last_error"], resultJSON: row["result"],
                figures: ResultFigures(
                    rowsWritten: try row.decodeIfPresent("rows_written"), totalRowsRemoved: try row.decodeIfPresent("rows_removed"),
                    rows: try row.decodeIfPresent("rows"), bytesFreed: try row.decodeIfPresent("bytes_freed"), path: row["path"],
                    bytes: try row.decodeIfPresent("bytes"), seconds: try row.decodeIfPresent("result_seconds")))
        }
    }

    /// `result -> field` cast with `cast` when it is a JSON number, else NULL.
    private static func number(_ field: ResultField, _ cast: String) -> String {
        "CASE WHEN jsonb_typeof(result -> '\(field.rawValue)') = 'number' THEN (result ->> '\(field.rawValue)')\(cast) END"
    }
}

/// A job as the report, the alerts, the dashboard and the demo show it.
public struct FinishedJob: Sendable, Equatable {
    /// `maintenance_jobs.id`.
    public var id: Int64
    /// Its cycle run, if any.
    public var runID: Int64?
    /// The task.
    public var task: String
    /// The job's state now.
    public var state: JobState
    /// Attempts started.
    public var attempts: Int
    /// Attempts allowed.
    public var maxAttempts: Int
    /// When the last attempt started.
    public var startedAt: Date?
    /// When the job reached its final state.
    public var finishedAt: Date?
    /// `finished_at - started_at` in seconds (nil while either is missing).
    public var seconds: Double?
    /// The error of the newest failed attempt (not redacted: callers show it through `Redactor`).
    public var lastError: String?
    /// The stored result, as JSON text.
    public var resultJSON: String?
    /// The result's standard fields.
    public var figures: ResultFigures
}

/// The standard fields of a stored result (`ResultField`) that hold a value of their JSON type.
public struct ResultFigures: Sendable, Equatable {
    /// `rows_written`.
    public var rowsWritten: Double?
    /// `total_rows_removed`.
    public var totalRowsRemoved: Double?
    /// `rows`.
    public var rows: Double?
    /// `bytes_freed`.
    public var bytesFreed: Double?
    /// `path` (as text, whatever its JSON type).
    public var path: String?
    /// `bytes`.
    public var bytes: Int64?
    /// `seconds`.
    public var seconds: Double?
}

/// One task's finished jobs over a window (the report's trends).
public struct TaskTotals: Sendable, Equatable {
    /// The task.
    public var task: String
    /// Jobs that succeeded or failed for good.
    public var jobs: Int
    /// Of which succeeded.
    public var succeeded: Int
    /// Of which failed.
    public var failed: Int
    /// Mean duration of the successes, seconds.
    public var averageSeconds: Double?
    /// Rows written or removed (each job's figure rounded).
    public var rows: Int64
    /// Bytes freed.
    public var bytesFreed: Int64
}

/// Rows one task's successful jobs wrote and removed over a window (the endpoint's counters).
public struct TaskRowTotals: Sendable, Equatable {
    /// The task.
    public var task: String
    /// Sum of `rows_written`.
    public var rowsWritten: Double
    /// Sum of `total_rows_removed`.
    public var rowsRemoved: Double
}
