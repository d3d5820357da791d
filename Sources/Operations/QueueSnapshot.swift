import Foundation
import JobQueue
import PostgresClient

/// What `/status` and `/metrics` read from the database in one go.
struct QueueSnapshot {
    /// The queue's own view of itself (`QueueStore.status`), shared with `closebell status`.
    var status: QueueStatus
    /// The last run of each cycle with its tasks (JSON objects for `/status`).
    var cycles: [[String: Any]]
    /// Unix time of each cycle's last successful run.
    var lastSuccess: [String: Double]
    /// The last run's state of each cycle.
    var lastState: [String: String]
    /// Percent of symbol-days present over 30 days by market-data table (task `completeness`).
    var completeness: [String: Double] = [:]

    /// Jobs by state and task.
    var depth: [(state: String, task: String, count: Int)] {
        status.depth.map { ($0.state.rawValue, $0.task, $0.count) }
    }

    /// Age of the oldest job that is due (`available`, `run_at` passed) but not claimed; 0 when none.
    var oldestWaitingSeconds: Double { status.oldestWaitingSeconds ?? 0 }

    /// Running jobs as `/status` lists them.
    var running: [[String: Any]] {
        status.running.map { job in
            [
                "id": job.id, "task": job.task, "attempt": job.attempt, "max_attempts": job.maxAttempts,
                "locked_by": job.worker ?? NSNull(), "run_id": job.runID.map { NSNumber(value: $0) } ?? NSNull(),
                "args": OpsFormat.parse(job.args), "progress": OpsFormat.parse(job.progress),
                "started_at": job.startedAt.map(OpsFormat.iso) ?? NSNull(), "heartbeat_at": job.heartbeatAt.map(OpsFormat.iso) ?? NSNull(),
                "running_seconds": job.runningSeconds,
            ]
        }
    }

    static func read(_ session: PostgresSession, runningLimit: Int) throws -> QueueSnapshot {
        let status = try QueueStore.status(session, runningLimit: runningLimit, failureLimit: 20, includeCancelled: true, waitingLimit: 20)

        let cycleRows = try session.query(
            """
            SELECT DISTINCT ON (r.cycle) r.id, r.cycle, r.period::text AS period, r.state, r.current_stage,
                   \(OpsFormat.isoSQL("r.started_at")) AS started_at, \(OpsFormat.isoSQL("r.finished_at")) AS finished_at,
                   (SELECT jsonb_agg(jsonb_build_object(
                               'job_id', j.id, 'task', j.task, 'state', j.state, 'attempts', j.attempts,
                               'seconds', extract(epoch FROM j.finished_at - j.started_at),
                               'error', CASE WHEN j.state = ANY($1::text[]) THEN j.errors -> -1 -> 'error' END)
                             ORDER BY j.id)::text
                      FROM maintenance_jobs j WHERE j.run_id = r.id) AS tasks,
                   r.outcome::text AS outcome
              FROM maintenance_cycle_runs r
             ORDER BY r.cycle, r.started_at DESC, r.id DESC
            """, [[JobState.failed, JobState.cancelled]])
        var cycles: [[String: Any]] = []
        var lastState: [String: String] = [:]
        for row in cycleRows {
            let cycle: String = try row.decode("cycle")
            let state: String = try row.decode("state")
            lastState[cycle] = state
            var tasks = OpsFormat.parse(row["tasks"])
            // Jobs pruned since: the outcome written at the end of the run still lists them.
            if tasks is NSNull, let outcome = OpsFormat.parse(row["outcome"]) as? [String: Any] {
                tasks = (outcome["tasks"] as? [[String: Any]])?.map { task in
                    ["job_id": task["job_id"] ?? NSNull(), "task": task["task"] ?? NSNull(), "state": task["state"] ?? NSNull(),
                     "attempts": task["attempts"] ?? NSNull()] as [String: Any]
                } ?? []
            }
            cycles.append([
                "cycle": cycle, "run_id": try row.decode("id", as: Int64.self), "period": try row.decode("period", as: String.self),
                "state": state, "current_stage": (try row.decodeIfPresent("current_stage", as: Int.self)).map { NSNumber(value: $0) } ?? NSNull(),
                "started_at": row["started_at"] ?? NSNull(), "finished_at": row["finished_at"] ?? NSNull(),
                "tasks": tasks is NSNull ? [] : tasks, "outcome": OpsFormat.parse(row["outcome"]),
            ])
        }

        var lastSuccess: [String: Double] = [:]
        for row in try session.query(
            // A cycle run's states are the job states' words, plus `partial`.
            "SELECT cycle, extract(epoch FROM max(finished_at))::float8 AS at FROM maintenance_cycle_runs WHERE state = $1 GROUP BY cycle",
            [JobState.succeeded]) {
            if let at: Double = try row.decodeIfPresent("at") { lastSuccess[try row.decode("cycle")] = at }
        }

        var completeness: [String: Double] = [:]
        if try session.query("SELECT to_regproc('market_data_completeness_summary') IS NOT NULL AS present").first?["present"] == "t" {
            for row in try session.query("SELECT table_name, percent::float8 AS percent FROM market_data_completeness_summary(30)") {
                if let percent: Double = try row.decodeIfPresent("percent") { completeness[try row.decode("table_name")] = percent }
            }
        }
        return QueueSnapshot(
            status: status, cycles: cycles, lastSuccess: lastSuccess,
            lastState: lastState, completeness: completeness)
    }
}

/// Which table each loading task writes.
enum TableNames {
    static let written: [String: String] = [
        "ohlc_daily": "market_data_daily", "volume_slots": "volume_slots", "metadata_enrich": "ticker_metadata",
        "volume_stats": "ticker_volume_stats", "universe_sync": "ticker_universe",
        "earnings": "ticker_earnings", "backfill": "market_data_daily",
    ]
}
