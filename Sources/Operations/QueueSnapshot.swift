import Foundation
import JobQueue
import PostgresClient
import Toolkit

/// What `/status` and `/metrics` read from the database in one go.
struct QueueSnapshot {
    /// The queue's own view of itself (`QueueStore.status`), shared with `closebell status`.
    var status: QueueStatus
    /// The last run of each cycle with its jobs.
    var cycles: [CycleRunRow]
    /// Unix time of each cycle's last successful run.
    var lastSuccess: [String: Double]
    /// The last run's state of each cycle.
    var lastState: [String: String]
    /// Percent of symbol-days present over 30 days by market-data table (task `completeness`).
    var completeness: [String: Double] = [:]

    /// The last run of each cycle with its tasks, as `/status` lists them. A task's `error` is
    /// its last error when it failed or was cancelled. Runs whose jobs were pruned list the tasks
    /// of the outcome written at the end of the run.
    var cyclesJSON: [[String: Any]] {
        cycles.map { run in
            let outcome = OpsFormat.parse(run.outcomeJSON)
            let tasks: [[String: Any]]
            if run.jobs.isEmpty {
                tasks = ((outcome as? [String: Any])?["tasks"] as? [[String: Any]])?.map { task in
                    ["job_id": task["job_id"] ?? NSNull(), "task": task["task"] ?? NSNull(), "state": task["state"] ?? NSNull(),
                     "attempts": task["attempts"] ?? NSNull()] as [String: Any]
                } ?? []
            } else {
                tasks = run.jobs.map { job in
                    let failed = job.state == .failed || job.state == .cancelled
                    return ["job_id": job.id, "task": job.task, "state": job.state.rawValue, "attempts": job.attempts,
                            "seconds": job.seconds.map { $0 as Any } ?? NSNull(),
                            "error": (failed ? job.lastError : nil).map { $0 as Any } ?? NSNull()]
                }
            }
            return [
                "cycle": run.cycle, "run_id": run.runID, "period": run.period, "state": run.state,
                "current_stage": run.currentStage.map { NSNumber(value: $0) } ?? NSNull(),
                "started_at": run.startedAt ?? NSNull(), "finished_at": run.finishedAt ?? NSNull(), "tasks": tasks, "outcome": outcome,
            ]
        }
    }

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

        let cycles = try CycleRunRow.read(session, """
            SELECT DISTINCT ON (r.cycle) \(CycleRunRow.columns)
              FROM maintenance_cycle_runs r
             ORDER BY r.cycle, r.started_at DESC, r.id DESC
            """)
        let lastState = Dictionary(cycles.map { ($0.cycle, $0.state) }, uniquingKeysWith: { first, _ in first })

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

/// A cycle run with its jobs, for `/status` and the dashboard.
struct CycleRunRow: Sendable {
    var runID: Int64
    var cycle: String
    var period: String
    var state: String
    var currentStage: Int?
    /// ISO 8601 UTC.
    var startedAt: String?
    var finishedAt: String?
    /// The run's jobs, by id (none once they are pruned).
    var jobs: [FinishedJob]
    /// `maintenance_cycle_runs.outcome`, JSON text.
    var outcomeJSON: String?

    /// The columns `read` needs, of `maintenance_cycle_runs r`.
    static let columns = """
        r.id, r.cycle, r.period::text AS period, r.state, r.current_stage,
        \(OpsFormat.isoSQL("r.started_at")) AS started_at, \(OpsFormat.isoSQL("r.finished_at")) AS finished_at, r.outcome::text AS outcome
        """

    /// The runs `sql` selects (with `columns`), in its order, with their jobs (`QueueStore.runJobs`).
    static func read(_ session: PostgresSession, _ sql: String, _ parameters: [any PostgresBindable] = []) throws -> [CycleRunRow] {
        let rows = try session.query(sql, parameters)
        let jobs = Dictionary(grouping: try QueueStore.runJobs(session, runIDs: try rows.map { try $0.decode("id") })) { $0.runID ?? 0 }
        return try rows.map { row in
            let id: Int64 = try row.decode("id")
            return CycleRunRow(
                runID: id, cycle: try row.decode("cycle"), period: try row.decode("period"), state: try row.decode("state"),
                currentStage: try row.decodeIfPresent("current_stage"), startedAt: row["started_at"], finishedAt: row["finished_at"],
                jobs: jobs[id] ?? [], outcomeJSON: row["outcome"])
        }
    }

    /// The dashboard's line per job: rows written, removed or handled, the last error (credentials removed).
    var tasks: [OperationsSnapshot.TaskOutcome] {
        jobs.map { job in
            OperationsSnapshot.TaskOutcome(
                jobID: job.id, task: job.task, state: job.state.rawValue, seconds: job.seconds,
                rows: job.figures.rowsWritten ?? job.figures.totalRowsRemoved ?? job.figures.rows,
                error: job.lastError.map { Redactor.summary($0) })
        }
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
