import ArgumentParser
import Foundation
import PostgresClient

/// `closebell status`: the queue at a glance.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Queue depth by state and task, oldest waiting job, running jobs, recent failures, recent cycle runs.")

    @OptionGroup var database: DatabaseOptions

    @Flag(help: "Print JSON.")
    var json = false

    @Option(help: "Refresh every N seconds until interrupted.")
    var watch: Double?

    func validate() throws {
        if let watch, !(watch > 0) { throw ValidationError("--watch must be a positive number of seconds") }
    }

    func run() async throws {
        let connection = try await PostgresConnection.connect(database.conninfo, applicationName: "closebell status")
        repeat {
            let report = try await QueueReport.load(connection)
            if watch != nil && isatty(1) == 1 { print("\u{1B}[2J\u{1B}[H", terminator: "") }
            if json { Output.json(report.jsonObject) } else { report.printText() }
            fflush(nil)
            if let watch { try await Task.sleep(nanoseconds: UInt64(max(0.2, watch) * 1_000_000_000)) }
        } while watch != nil
    }
}

/// What `status` shows, read in one round trip per section.
struct QueueReport {
    var depth: [(task: String, state: String, count: Int)] = []
    var oldestWaitingSeconds: Double?
    var running: [(id: Int64, task: String, worker: String, heartbeatAge: Double, attempt: Int, progress: String?)] = []
    var failures: [(id: Int64, task: String, finished: String, error: String)] = []
    var cycles: [(id: Int64, cycle: String, period: String, state: String, started: String, finished: String?)] = []

    static func load(_ connection: PostgresConnection) async throws -> QueueReport {
        var report = QueueReport()
        for row in try await connection.query("""
            SELECT task, state, count(*) AS n FROM maintenance_jobs
            WHERE state IN ('available', 'running') OR finished_at > now() - interval '24 hours'
            GROUP BY task, state ORDER BY task, state
            """) {
            report.depth.append((try row.decode("task"), try row.decode("state"), try row.decode("n")))
        }
        report.oldestWaitingSeconds = try await connection.query("""
            SELECT extract(epoch FROM now() - min(run_at))::float8 AS age FROM maintenance_jobs
            WHERE state = 'available' AND run_at <= now()
            """).first?.decodeIfPresent("age", as: Double.self)
        for row in try await connection.query("""
            SELECT id, task, coalesce(locked_by, '?') AS worker, attempts,
                   extract(epoch FROM now() - heartbeat_at)::float8 AS age, progress::text AS progress
            FROM maintenance_jobs WHERE state = 'running' ORDER BY id LIMIT 50
            """) {
            report.running.append((try row.decode("id"), try row.decode("task"), try row.decode("worker"),
                                   try row.decodeIfPresent("age") ?? 0, try row.decode("attempts"), row["progress"]))
        }
        for row in try await connection.query("""
            SELECT id, task,
                   CASE WHEN state = 'failed' THEN to_char(finished_at, 'YYYY-MM-DD HH24:MI:SS')
                        ELSE format('retrying (attempt %s of %s)', attempts, max_attempts) END AS finished,
                   coalesce(errors -> -1 ->> 'error', '') AS error
            FROM maintenance_jobs
            WHERE state = 'failed' OR (state = 'available' AND jsonb_array_length(errors) > 0)
            ORDER BY coalesce(finished_at, now()) DESC LIMIT 10
            """) {
            report.failures.append((try row.decode("id"), try row.decode("task"), row["finished"] ?? "", row["error"] ?? ""))
        }
        let hasCycles = try await connection.query("SELECT to_regclass('maintenance_cycle_runs') IS NOT NULL AS ok").first?.decode("ok", as: Bool.self) ?? false
        if hasCycles {
            for row in try await connection.query("""
                SELECT id, cycle, period::text AS period, state, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS') AS started,
                       to_char(finished_at, 'YYYY-MM-DD HH24:MI:SS') AS finished
                FROM maintenance_cycle_runs ORDER BY id DESC LIMIT 10
                """) {
                report.cycles.append((try row.decode("id"), try row.decode("cycle"), row["period"] ?? "", row["state"] ?? "",
                                      row["started"] ?? "", row["finished"]))
            }
        }
        return report
    }

    var jsonObject: [String: Any] {
        [
            "depth": depth.map { ["task": $0.task, "state": $0.state, "count": $0.count] },
            "oldest_waiting_seconds": oldestWaitingSeconds.map { $0 as Any } ?? NSNull(),
            "running": running.map {
                ["id": $0.id, "task": $0.task, "worker": $0.worker, "heartbeat_age_seconds": $0.heartbeatAge,
                 "attempt": $0.attempt, "progress": Output.parse($0.progress)] as [String: Any]
            },
            "recent_failures": failures.map { ["id": $0.id, "task": $0.task, "finished_at": $0.finished, "error": $0.error] as [String: Any] },
            "cycle_runs": cycles.map {
                ["id": $0.id, "cycle": $0.cycle, "period": $0.period, "state": $0.state, "started_at": $0.started,
                 "finished_at": $0.finished.map { $0 as Any } ?? NSNull()] as [String: Any]
            },
        ]
    }

    func printText() {
        print("Queue (waiting, running, and finished in the last 24 h)")
        if depth.isEmpty {
            print("  empty")
        } else {
            Output.table(["TASK", "STATE", "JOBS"], depth.map { [$0.task, $0.state, String($0.count)] })
        }
        print("Oldest due job waiting: \(oldestWaitingSeconds.map(Output.duration) ?? "none")")
        print("\nRunning")
        if running.isEmpty {
            print("  none")
        } else {
            Output.table(["ID", "TASK", "ATTEMPT", "WORKER", "HEARTBEAT AGE", "PROGRESS"], running.map {
                [String($0.id), $0.task, String($0.attempt), $0.worker, Output.duration($0.heartbeatAge), String(($0.progress ?? "").prefix(60))]
            })
        }
        print("\nRecent failures (failed for good, or waiting for a retry)")
        if failures.isEmpty {
            print("  none")
        } else {
            Output.table(["ID", "TASK", "FINISHED", "LAST ERROR"], failures.map { [String($0.id), $0.task, $0.finished, String($0.error.prefix(100))] })
        }
        if !cycles.isEmpty {
            print("\nRecent cycle runs")
            Output.table(["RUN", "CYCLE", "PERIOD", "STATE", "STARTED", "FINISHED"], cycles.map {
                [String($0.id), $0.cycle, $0.period, $0.state, $0.started, $0.finished ?? "-"]
            })
        }
    }
}
