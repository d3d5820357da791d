import Foundation
import PostgresClient

/// A job a worker has claimed: one attempt of one `maintenance_jobs` row.
public struct ClaimedJob: Sendable {
    /// `maintenance_jobs.id`.
    public let id: Int64
    /// The task name.
    public let task: String
    /// The arguments.
    public let args: PostgresJSON
    /// This attempt's number (1 for the first).
    public let attempt: Int
    /// The row's `max_attempts`.
    public let maxAttempts: Int
    /// The cycle run, if any.
    public let runID: Int64?
    /// The checkpoint left by an earlier attempt.
    public let progress: PostgresJSON?
    /// When the job became due (`run_at`), for enqueue-to-start latency.
    public let runAt: Date
    /// When the job was inserted.
    public let createdAt: Date
    /// `maintenance_jobs.claim_token` of this claim: unique to it, so every later statement
    /// about this attempt (heartbeat, progress, outcome, release) matches this claim only.
    public let claimToken: Int64
}

/// How one attempt ended, as the worker reports it to the database.
public enum JobOutcome: Sendable {
    /// The task returned this result.
    case succeeded(result: PostgresJSON)
    /// The task threw; `retryable` false (see `JobFailure`) fails the job at once.
    case failed(error: JobErrorRecord, retryable: Bool, retryDelay: Double)
    /// The job was cancelled while it ran; its state is left as the canceller set it.
    case cancelled
}

/// One entry of `maintenance_jobs.errors`: what failed, in which attempt, on which worker.
public struct JobErrorRecord: Sendable, Codable, Equatable {
    /// The attempt number.
    public var attempt: Int
    /// The error's description (never includes secrets).
    public var error: String
    /// The Swift type of the error (for example `PostgresError`, `PolygonError`).
    public var type: String
    /// The SQLSTATE, when the error came from PostgreSQL.
    public var sqlstate: String?
    /// The worker that ran the attempt.
    public var worker: String
    /// When it failed (ISO 8601).
    public var at: String

    /// Builds a record from any error.
    public init(attempt: Int, error: Error, worker: String, at: Date = Date()) {
        self.attempt = attempt
        self.error = String(describing: error)
        self.type = String(describing: Swift.type(of: error))
        self.sqlstate = (error as? PostgresError)?.sqlState
        self.worker = worker
        self.at = ISO8601DateFormatter().string(from: at)
    }
}

/// The SQL of the queue: enqueue, claim, heartbeat, complete, rescue, release, prune, retry,
/// cancel and status. Code outside JobQueue reads and steers jobs through these functions.
///
/// Every method is one short statement (one implicit transaction); none keeps a transaction
/// open. Completion, heartbeat, progress and release statements only touch a running row that
/// still carries the claim token of the worker's claim, so an execution that lost its job
/// (cancelled, rescued, retried, claimed again) can never overwrite the job's new state. Those
/// that touch several rows lock them in id order first, so two of them (or a cycle
/// cancellation, which does the same) never deadlock on each other.
public enum QueueStore {
    /// Inserts a job; returns its id, or nil when a waiting or running job already has the
    /// same `unique_key`.
    public static func enqueue(
        _ session: PostgresSession, task: String, args: PostgresJSON = PostgresJSON(text: "{}"),
        priority: Int = 0, runAt: Date? = nil, maxAttempts: Int? = nil, uniqueKey: String? = nil,
        queue: String = "default", runID: Int64? = nil
    ) throws -> Int64? {
        let rows = try session.query("""
            INSERT INTO maintenance_jobs (task, args, priority, run_at, max_attempts, unique_key, queue, run_id)
            VALUES ($1, $2::jsonb, $3, coalesce($4::timestamptz, now()), coalesce($5::int, 5), $6, $7, $8)
            ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('available', 'running')
            DO NOTHING
            RETURNING id
            """, [task, args, priority, runAt, maxAttempts, uniqueKey, queue, runID])
        return try rows.first?.decode("id", as: Int64.self)
    }

    /// Claims up to `limit` due jobs of `queue`, highest priority first, and marks them running
    /// with a lease of `leaseSeconds`.
    public static func claim(_ session: PostgresSession, worker: String, queue: String, limit: Int, leaseSeconds: Double) throws -> [ClaimedJob] {
        let rows = try session.query("""
            WITH picked AS (
                SELECT id FROM maintenance_jobs
                WHERE state = 'available' AND queue = $1 AND run_at <= now()
                ORDER BY priority DESC, run_at, id
                LIMIT $2
                FOR UPDATE SKIP LOCKED
            )
            UPDATE maintenance_jobs AS j
               SET state = 'running', attempts = j.attempts + 1, locked_by = $3,
                   lease_expires_at = now() + make_interval(secs => $4), heartbeat_at = now(),
                   started_at = now(), claim_token = nextval('maintenance_jobs_claim_seq')
              FROM picked
             WHERE j.id = picked.id
            RETURNING j.id, j.task, j.args, j.attempts, j.max_attempts, j.run_id, j.progress, j.run_at, j.created_at, j.claim_token
            """, [queue, limit, worker, leaseSeconds])
        return try rows.map { row in
            ClaimedJob(
                id: try row.decode("id"), task: try row.decode("task"), args: try row.decode("args"),
                attempt: try row.decode("attempts"), maxAttempts: try row.decode("max_attempts"),
                runID: try row.decodeIfPresent("run_id"), progress: try row.decodeIfPresent("progress"),
                runAt: try row.decode("run_at"), createdAt: try row.decode("created_at"), claimToken: try row.decode("claim_token"))
        }
        .sorted { $0.id < $1.id }
    }

    /// The rows of `claims` still running under those claims, locked in id order (a CTE the
    /// multi-row statements share; `$1` ids, `$2` tokens).
    private static let lockClaims = """
        held AS (
            SELECT j.id, j.claim_token FROM maintenance_jobs AS j
              JOIN unnest($1::bigint[], $2::bigint[]) AS c(id, token) ON j.id = c.id AND j.claim_token = c.token
             WHERE j.state = 'running'
             ORDER BY j.id
               FOR UPDATE OF j
        )
        """

    /// Extends the lease of the claims this worker holds; returns the tokens still held. A
    /// token missing from the answer lost its job: cancelled, rescued or finished by someone else.
    /// A lease that lapsed while the database was unreachable is extended too, as long as no
    /// rescue took the job meanwhile.
    public static func heartbeat(_ session: PostgresSession, claims: [(id: Int64, token: Int64)], leaseSeconds: Double) throws -> Set<Int64> {
        guard !claims.isEmpty else { return [] }
        let rows = try session.query("""
            WITH \(lockClaims)
            UPDATE maintenance_jobs AS j
               SET heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => $3)
              FROM held
             WHERE j.id = held.id AND j.claim_token = held.claim_token AND j.state = 'running'
            RETURNING j.claim_token
            """, [claims.map(\.id), claims.map(\.token), leaseSeconds])
        return Set(try rows.map { try $0.decode("claim_token", as: Int64.self) })
    }

    /// Records the outcomes of many attempts (successes and failures together) in ONE statement;
    /// `cancelled` outcomes are skipped. Returns the ids updated, with their new state (a job
    /// whose lease was lost is not updated). One statement matters for cycle runs: the
    /// statement-level trigger (migrations 0004, 0060) locks the runs it advances in run id order,
    /// which prevents deadlocks only when a transaction advances all its runs in one statement;
    /// successes and failures written by two statements of one transaction could lock two runs
    /// in opposite orders in two workers.
    public static func complete(_ session: PostgresSession, jobs: [(id: Int64, token: Int64, outcome: JobOutcome)]) throws -> [Int64: JobState] {
        var ids: [Int64] = [], tokens: [Int64] = [], succeeded: [Bool] = [], results: [String?] = []
        var errors: [String?] = [], retryable: [Bool] = [], delays: [Double] = []
        for job in jobs {
            switch job.outcome {
            case .succeeded(let result):
                succeeded.append(true); results.append(result.text); errors.append(nil)
                retryable.append(false); delays.append(0)
            case .failed(let error, let canRetry, let delay):
                succeeded.append(false); results.append(nil); errors.append(try PostgresJSON(encoding: error).text)
                retryable.append(canRetry); delays.append(delay)
            case .cancelled:
                continue
            }
            ids.append(job.id)
            tokens.append(job.token)
        }
        guard !ids.isEmpty else { return [:] }
        let rows = try session.query("""
            WITH \(lockClaims)
            UPDATE maintenance_jobs AS j
               SET state = CASE WHEN c.ok THEN 'succeeded'
                                WHEN c.retryable AND j.attempts < j.max_attempts THEN 'available'
                                ELSE 'failed' END,
                   result = CASE WHEN c.ok THEN c.result ELSE j.result END,
                   run_at = CASE WHEN NOT c.ok AND c.retryable AND j.attempts < j.max_attempts
                                 THEN now() + make_interval(secs => c.delay) ELSE j.run_at END,
                   finished_at = CASE WHEN NOT c.ok AND c.retryable AND j.attempts < j.max_attempts
                                      THEN NULL ELSE now() END,
                   errors = CASE WHEN c.ok THEN j.errors ELSE j.errors || jsonb_build_array(c.error) END,
                   locked_by = NULL, lease_expires_at = NULL
              FROM held, unnest($1::bigint[], $2::bigint[], $3::bool[], $4::jsonb[], $5::jsonb[], $6::bool[], $7::float8[])
                   AS c(id, token, ok, result, error, retryable, delay)
             WHERE j.id = held.id AND c.id = held.id AND j.claim_token = c.token AND j.state = 'running'
            RETURNING j.id, j.state
            """, [ids, tokens, succeeded, results, errors, retryable, delays])
        var states: [Int64: JobState] = [:]
        for row in rows { states[try row.decode("id")] = try row.decode("state") }
        return states
    }

    /// Saves a task's checkpoint, if the job still runs under this claim.
    public static func saveProgress(_ session: PostgresSession, id: Int64, token: Int64, progress: PostgresJSON) throws {
        try session.query("""
            UPDATE maintenance_jobs SET progress = $3::jsonb
             WHERE id = $1 AND claim_token = $2 AND state = 'running'
            """, [id, token, progress])
    }

    /// Puts jobs this worker still holds back to `available` without counting the attempt
    /// (used at shutdown, for jobs that did not finish within the grace period).
    @discardableResult
    public static func release(_ session: PostgresSession, claims: [(id: Int64, token: Int64)]) throws -> Int {
        guard !claims.isEmpty else { return 0 }
        let rows = try session.query("""
            WITH \(lockClaims)
            UPDATE maintenance_jobs AS j
               SET state = 'available', attempts = j.attempts - 1, locked_by = NULL,
                   lease_expires_at = NULL, run_at = now()
              FROM held
             WHERE j.id = held.id AND j.claim_token = held.claim_token AND j.state = 'running'
            """, [claims.map(\.id), claims.map(\.token)])
        if (rows.affectedRows ?? 0) > 0 { try session.query("SELECT pg_notify('maintenance_jobs', '')") }
        return rows.affectedRows ?? 0
    }

    /// Returns running jobs whose lease lapsed (their worker died or hung) to the queue, or
    /// fails them when that was their last attempt, recording the lapse as the attempt's error.
    /// Returns how many were rescued and how many failed.
    ///
    /// After a server restart every lease counts from the server's start: a lease that lapsed
    /// while the server was down says nothing about its worker, which could not send heartbeats
    /// then. Such a job is rescued only when its worker has not renewed it within one lease
    /// (`lease_expires_at - heartbeat_at`) of the server coming back.
    public static func rescueExpired(_ session: PostgresSession, rescuer: String, limit: Int = 500) throws -> (requeued: Int, failed: Int) {
        let rows = try session.query("""
            WITH expired AS (
                SELECT id FROM maintenance_jobs
                WHERE state = 'running' AND lease_expires_at < now()
                  AND pg_postmaster_start_time() + (lease_expires_at - coalesce(heartbeat_at, lease_expires_at)) < now()
                ORDER BY lease_expires_at
                LIMIT $1
                FOR UPDATE SKIP LOCKED
            )
            UPDATE maintenance_jobs AS j
               SET state = CASE WHEN j.attempts < j.max_attempts THEN 'available' ELSE 'failed' END,
                   finished_at = CASE WHEN j.attempts < j.max_attempts THEN NULL ELSE now() END,
                   run_at = now(),
                   errors = j.errors || jsonb_build_array(jsonb_build_object(
                       'attempt', j.attempts,
                       'error', 'lease expired: worker ' || coalesce(j.locked_by, '?') || ' stopped sending heartbeats',
                       'type', 'LeaseExpired', 'worker', $2::text,
                       'at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))),
                   locked_by = NULL, lease_expires_at = NULL
              FROM expired
             WHERE j.id = expired.id AND j.state = 'running' AND j.lease_expires_at < now()
            RETURNING j.state
            """, [limit, rescuer])
        let failed = try rows.filter { try $0.decode("state", as: JobState.self) == .failed }.count
        let requeued = rows.count - failed
        if requeued > 0 { try session.query("SELECT pg_notify('maintenance_jobs', '')") }
        return (requeued, failed)
    }

    /// Deletes finished jobs older than `olderThanSeconds`, in batches; returns rows deleted.
    @discardableResult
    public static func pruneFinished(_ session: PostgresSession, olderThanSeconds: Double, batchSize: Int = 5_000) throws -> Int {
        var total = 0
        while true {
            let rows = try session.query("""
                DELETE FROM maintenance_jobs WHERE id IN (
                    SELECT id FROM maintenance_jobs
                    WHERE state IN ('succeeded', 'failed', 'cancelled')
                      AND finished_at < now() - make_interval(secs => $1)
                    LIMIT $2)
                """, [olderThanSeconds, batchSize])
            let deleted = rows.affectedRows ?? 0
            total += deleted
            if deleted < batchSize { return total }
        }
    }

    /// Puts failed or cancelled jobs back in the queue (attempts reset, due now, errors kept)
    /// through `maintenance_job_retry` (migration 0090). Returns every job of `ids` that exists,
    /// with its state afterwards and whether this call changed it.
    public static func retry(_ session: PostgresSession, ids: [Int64]) throws -> [JobChange] {
        try changes(session.query("SELECT id, state, changed FROM maintenance_job_retry($1::bigint[])", [ids]))
    }

    /// Cancels waiting or running jobs through `maintenance_job_cancel` (migration 0090); a
    /// running job's worker stops its task at the next heartbeat. Returns every job of `ids`
    /// that exists, with its state afterwards and whether this call changed it.
    public static func cancel(_ session: PostgresSession, ids: [Int64]) throws -> [JobChange] {
        try changes(session.query("SELECT id, state, changed FROM maintenance_job_cancel($1::bigint[])", [ids]))
    }

    private static func changes(_ rows: PostgresRows) throws -> [JobChange] {
        try rows.map { JobChange(id: try $0.decode("id"), state: try $0.decode("state"), changed: try $0.decode("changed")) }
    }

    /// Jobs, newest first, filtered by state, task and cycle run when given (`closebell jobs list`).
    public static func list(_ session: PostgresSession, state: JobState?, task: String?, runID: Int64?, limit: Int) throws -> [JobSummary] {
        try session.query("""
            SELECT id, task, state, attempts, max_attempts, priority, run_id, created_at,
                   extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8 AS seconds,
                   coalesce(errors -> -1 ->> 'error', '') AS last_error
              FROM maintenance_jobs
             WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR task = $2)
               AND ($3::bigint IS NULL OR run_id = $3)
             ORDER BY id DESC LIMIT $4
            """, [state, task, runID, limit]).map { row in
            JobSummary(
                id: try row.decode("id"), task: try row.decode("task"), state: try row.decode("state"),
                attempts: try row.decode("attempts"), maxAttempts: try row.decode("max_attempts"), priority: try row.decode("priority"),
                runID: try row.decodeIfPresent("run_id"), createdAt: try row.decode("created_at"),
                seconds: try row.decodeIfPresent("seconds"), lastError: try row.decode("last_error"))
        }
    }

    /// The whole row of job `id` as a JSON object (`to_jsonb`), nil when there is none.
    public static func job(_ session: PostgresSession, id: Int64) throws -> PostgresJSON? {
        try session.query("SELECT to_jsonb(j) AS job FROM maintenance_jobs j WHERE id = $1", [id]).first?.decodeIfPresent("job")
    }

    /// The queue at a glance (see `QueueStatus`): one short statement per section.
    ///
    /// - Parameters:
    ///   - runningLimit: most running jobs listed.
    ///   - failureLimit: most failed, cancelled or retrying jobs listed.
    ///   - includeCancelled: whether cancelled jobs count as failures.
    ///   - waitingLimit: most waiting jobs listed.
    public static func status(_ session: PostgresSession, runningLimit: Int, failureLimit: Int, includeCancelled: Bool,
                              waitingLimit: Int) throws -> QueueStatus {
        let depth = try session.query("""
            SELECT task, state, count(*)::bigint AS n,
                   count(*) FILTER (WHERE state IN ('available', 'running') OR finished_at > now() - interval '24 hours')::bigint AS recent
              FROM maintenance_jobs GROUP BY task, state ORDER BY task, state
            """).map { row in
            QueueStatus.Depth(task: try row.decode("task"), state: try row.decode("state"),
                              count: Int(try row.decode("n", as: Int64.self)), recent: Int(try row.decode("recent", as: Int64.self)))
        }
        let oldest: Double? = try session.query("""
            SELECT extract(epoch FROM now() - min(run_at))::float8 AS age
              FROM maintenance_jobs WHERE state = 'available' AND run_at <= now()
            """).first?.decodeIfPresent("age")
        let running = try session.query("""
            SELECT id, task, attempts, max_attempts, locked_by, run_id, args::text AS args, progress::text AS progress,
                   started_at, heartbeat_at, coalesce(extract(epoch FROM now() - started_at), 0)::float8 AS running_seconds,
                   coalesce(extract(epoch FROM now() - heartbeat_at), 0)::float8 AS heartbeat_age
              FROM maintenance_jobs WHERE state = 'running' ORDER BY started_at, id LIMIT $1
            """, [runningLimit]).map { row in
            QueueStatus.RunningJob(
                id: try row.decode("id"), task: try row.decode("task"), attempt: try row.decode("attempts"),
                maxAttempts: try row.decode("max_attempts"), worker: row["locked_by"], runID: try row.decodeIfPresent("run_id"),
                args: row["args"], progress: row["progress"], startedAt: try row.decodeIfPresent("started_at"),
                heartbeatAt: try row.decodeIfPresent("heartbeat_at"), runningSeconds: try row.decode("running_seconds"),
                heartbeatAgeSeconds: try row.decode("heartbeat_age"))
        }
        let failures = try session.query("""
            SELECT id, task, state, attempts, max_attempts, run_id, coalesce(errors -> -1 ->> 'error', '') AS error,
                   finished_at, created_at
              FROM maintenance_jobs
             WHERE state = 'failed' OR ($2 AND state = 'cancelled')
                OR (state = 'available' AND jsonb_typeof(errors) = 'array' AND jsonb_array_length(errors) > 0)
             ORDER BY coalesce(finished_at, now()) DESC, id DESC LIMIT $1
            """, [failureLimit, includeCancelled]).map { row in
            QueueStatus.Failure(
                id: try row.decode("id"), task: try row.decode("task"), state: try row.decode("state"),
                attempts: try row.decode("attempts"), maxAttempts: try row.decode("max_attempts"),
                runID: try row.decodeIfPresent("run_id"), error: try row.decode("error"),
                finishedAt: try row.decodeIfPresent("finished_at"), createdAt: try row.decode("created_at"))
        }
        let waiting = try session.query("""
            SELECT id, task, queue, priority, attempts, run_id, run_at
              FROM maintenance_jobs WHERE state = 'available' ORDER BY run_at, priority DESC, id LIMIT $1
            """, [waitingLimit]).map { row in
            QueueStatus.Waiting(
                id: try row.decode("id"), task: try row.decode("task"), queue: try row.decode("queue"),
                priority: try row.decode("priority"), runAt: try row.decode("run_at"), attempts: try row.decode("attempts"),
                runID: try row.decodeIfPresent("run_id"))
        }
        return QueueStatus(depth: depth, oldestWaitingSeconds: oldest, running: running, failures: failures, waiting: waiting)
    }

    /// When the newest job of `task` succeeded (any worker, any host); nil when none did.
    public static func lastSucceeded(_ session: PostgresSession, task: String) throws -> Date? {
        try session.query(
            "SELECT max(finished_at) AS at FROM maintenance_jobs WHERE task = $1 AND state = 'succeeded'", [task]
        ).first?.decodeIfPresent("at")
    }

    /// Jobs in `state` (and, when given, with exactly `attempts` attempts), e.g. for benchmarks
    /// that wait for a queue to drain.
    public static func count(_ session: PostgresSession, state: JobState, attempts: Int? = nil) throws -> Int {
        Int(try session.query(
            "SELECT count(*)::bigint AS n FROM maintenance_jobs WHERE state = $1 AND ($2::int IS NULL OR attempts = $2)",
            [state, attempts]).first?.decode("n", as: Int64.self) ?? 0)
    }

    /// True when no job waits or runs (due or not).
    public static func isIdle(_ session: PostgresSession) throws -> Bool {
        try session.query("""
            SELECT NOT EXISTS (SELECT 1 FROM maintenance_jobs WHERE state = 'available')
               AND NOT EXISTS (SELECT 1 FROM maintenance_jobs WHERE state = 'running') AS idle
            """).first?.decode("idle", as: Bool.self) ?? false
    }

    /// The cycle runs among `runIDs` that the current transaction finished (their trigger set
    /// `finished_at` to this transaction's `now()`), for the `maintenance_cycle_finished` log line.
    public static func cycleRunsFinishedNow(_ session: PostgresSession, among runIDs: [Int64]) throws -> [FinishedCycleRun] {
        guard !runIDs.isEmpty else { return [] }
        let rows = try session.query("""
            SELECT id, cycle, period::text AS period, state,
                   extract(epoch FROM finished_at - started_at)::float8 AS seconds,
                   coalesce((outcome ->> 'succeeded')::int, 0) AS succeeded,
                   coalesce((outcome ->> 'failed')::int, 0) + coalesce((outcome ->> 'cancelled')::int, 0) AS failed,
                   coalesce(jsonb_array_length(outcome -> 'tasks'), 0) AS total
            FROM maintenance_cycle_runs
            WHERE id = ANY($1::bigint[]) AND state <> 'running' AND finished_at = now()
            """, [runIDs])
        return try rows.map { row in
            FinishedCycleRun(
                runID: try row.decode("id"), cycle: try row.decode("cycle"), period: row["period"] ?? "",
                state: try row.decode("state"), seconds: try row.decodeIfPresent("seconds") ?? 0,
                succeeded: try row.decode("succeeded"), failed: try row.decode("failed"), total: try row.decode("total"))
        }
    }
}

/// One line of `QueueStore.list`.
public struct JobSummary: Sendable, Equatable {
    /// `maintenance_jobs.id`.
    public let id: Int64
    /// The task name.
    public let task: String
    /// The state.
    public let state: JobState
    /// Attempts made.
    public let attempts: Int
    /// The row's `max_attempts`.
    public let maxAttempts: Int
    /// Higher runs first.
    public let priority: Int
    /// The cycle run, if any.
    public let runID: Int64?
    /// When it was inserted.
    public let createdAt: Date
    /// From its last start to its end (or now); nil before its first start.
    public let seconds: Double?
    /// The last attempt's error ("" when none).
    public let lastError: String
}

/// One job's answer to `QueueStore.retry` or `QueueStore.cancel`.
public struct JobChange: Sendable, Equatable {
    /// `maintenance_jobs.id`.
    public let id: Int64
    /// Its state after the call.
    public let state: JobState
    /// Whether the call changed it (false: it was in a state the action does not apply to).
    public let changed: Bool

    /// Creates an answer.
    public init(id: Int64, state: JobState, changed: Bool) {
        self.id = id
        self.state = state
        self.changed = changed
    }
}

/// A cycle run that just ended, as the worker whose completion ended it logs it.
public struct FinishedCycleRun: Sendable, Equatable {
    /// `maintenance_cycle_runs.id`.
    public let runID: Int64
    /// The cycle's name.
    public let cycle: String
    /// The period (trading date, ISO week or month start).
    public let period: String
    /// `succeeded`, `partial`, `failed` or `cancelled`.
    public let state: String
    /// From the run's start to its end.
    public let seconds: Double
    /// Tasks that succeeded.
    public let succeeded: Int
    /// Tasks that failed or were cancelled.
    public let failed: Int
    /// Tasks in the run.
    public let total: Int
}
