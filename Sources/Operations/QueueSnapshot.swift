import Foundation
import PostgresClient

/// What `/status` and `/metrics` read from the database in one go.
struct QueueSnapshot {
    /// Jobs by state and task.
    var depth: [(state: String, task: String, count: Int)]
    /// Age of the oldest job that is due (`available`, `run_at` passed) but not claimed; 0 when none.
    var oldestWaitingSeconds: Double
    /// Running jobs (JSON objects for `/status`).
    var running: [[String: Any]]
    /// The last run of each cycle with its tasks (JSON objects for `/status`).
    var cycles: [[String: Any]]
    /// Unix time of each cycle's last successful run.
    var lastSuccess: [String: Double]
    /// The last run's state of each cycle.
    var lastState: [String: String]
    /// Percent of symbol-days present over 30 days by market-data table (task `completeness`).
    var completeness: [String: Double] = [:]

    static func read(_ session: PostgresSession, runningLimit: Int) throws -> QueueSnapshot {
        let depthRows = try session.query(
            "SELECT state, task, count(*)::bigint AS n FROM maintenance_jobs GROUP BY state, task ORDER BY state, task")
        let depth: [(String, String, Int)] = try depthRows.map { (try $0.decode("state"), try $0.decode("task"), Int(try $0.decode("n", as: Int64.self))) }
        let oldest = try session.query(
            """
            SELECT coalesce(extract(epoch FROM now() - min(run_at)), 0)::float8 AS age
              FROM maintenance_jobs WHERE state = 'available' AND run_at <= now()
            """).first?.decode("age", as: Double.self) ?? 0

        var running: [[String: Any]] = []
        if runningLimit > 0 {
            let rows = try session.query(
                """
                SELECT id, task, attempts, max_attempts, locked_by, run_id, args::text AS args, progress::text AS progress,
                       \(OpsFormat.isoSQL("started_at")) AS started_at, \(OpsFormat.isoSQL("heartbeat_at")) AS heartbeat_at,
                       extract(epoch FROM now() - started_at)::float8 AS running_seconds
                  FROM maintenance_jobs WHERE state = 'running' ORDER BY started_at, id LIMIT $1
                """, [runningLimit])
            for row in rows {
                running.append([
                    "id": try row.decode("id", as: Int64.self), "task": try row.decode("task", as: String.self),
                    "attempt": try row.decode("attempts", as: Int.self), "max_attempts": try row.decode("max_attempts", as: Int.self),
                    "locked_by": row["locked_by"] ?? NSNull(), "run_id": (try row.decodeIfPresent("run_id", as: Int64.self)).map { NSNumber(value: $0) } ?? NSNull(),
                    "args": OpsFormat.parse(row["args"]), "progress": OpsFormat.parse(row["progress"]),
                    "started_at": row["started_at"] ?? NSNull(), "heartbeat_at": row["heartbeat_at"] ?? NSNull(),
                    "running_seconds": (try row.decodeIfPresent("running_seconds", as: Double.self)) ?? 0,
                ])
            }
        }

        let cycleRows = try session.query(
            """
            SELECT DISTINCT ON (r.cycle) r.id, r.cycle, r.period::text AS period, r.state, r.current_stage,
                   \(OpsFormat.isoSQL("r.started_at")) AS started_at, \(OpsFormat.isoSQL("r.finished_at")) AS finished_at,
                   (SELECT jsonb_agg(jsonb_build_object(
                               'job_id', j.id, 'task', j.task, 'state', j.state, 'attempts', j.attempts,
                               'seconds', extract(epoch FROM j.finished_at - j.started_at),
                               'error', CASE WHEN j.state IN ('failed', 'cancelled') THEN j.errors -> -1 -> 'error' END)
                             ORDER BY j.id)::text
                      FROM maintenance_jobs j WHERE j.run_id = r.id) AS tasks,
                   r.outcome::text AS outcome
              FROM maintenance_cycle_runs r
             ORDER BY r.cycle, r.started_at DESC, r.id DESC
            """)
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
            "SELECT cycle, extract(epoch FROM max(finished_at))::float8 AS at FROM maintenance_cycle_runs WHERE state = 'succeeded' GROUP BY cycle") {
            if let at: Double = try row.decodeIfPresent("at") { lastSuccess[try row.decode("cycle")] = at }
        }

        var completeness: [String: Double] = [:]
        if try session.query("SELECT to_regproc('market_data_completeness_summary') IS NOT NULL AS present").first?["present"] == "t" {
            for row in try session.query("SELECT table_name, percent::float8 AS percent FROM market_data_completeness_summary(30)") {
                if let percent: Double = try row.decodeIfPresent("percent") { completeness[try row.decode("table_name")] = percent }
            }
        }
        return QueueSnapshot(
            depth: depth, oldestWaitingSeconds: oldest, running: running, cycles: cycles, lastSuccess: lastSuccess,
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
