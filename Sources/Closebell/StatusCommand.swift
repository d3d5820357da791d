import ArgumentParser
import Foundation
import JobQueue
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

/// What `status` shows: the queue's status model (`QueueStore.status`, the one `/status`
/// serves too) and the recent cycle runs.
struct QueueReport {
    var status: QueueStatus
    var cycles: [(id: Int64, cycle: String, period: String, state: String, started: String, finished: String?)] = []

    /// Job counts by task and state: waiting and running jobs, and those finished in the last 24 h.
    var depth: [(task: String, state: String, count: Int)] {
        status.depth.filter { $0.recent > 0 }.map { ($0.task, $0.state.rawValue, $0.recent) }
    }

    /// Running jobs by id.
    var running: [QueueStatus.RunningJob] { status.running.sorted { $0.id < $1.id } }

    /// When a failure finished (local time), or which retry it waits for.
    static func finished(_ failure: QueueStatus.Failure) -> String {
        guard failure.state == .failed, let at = failure.finishedAt else {
            return "retrying (attempt \(failure.attempts) of \(failure.maxAttempts))"
        }
        return Output.localTime(at)
    }

    static func load(_ connection: PostgresConnection) async throws -> QueueReport {
        let status = try await connection.withSession {
            try QueueStore.status($0, runningLimit: 50, failureLimit: 10, includeCancelled: false, waitingLimit: 0)
        }
        var report = QueueReport(status: status)
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
            "oldest_waiting_seconds": status.oldestWaitingSeconds.map { $0 as Any } ?? NSNull(),
            "running": running.map {
                ["id": $0.id, "task": $0.task, "worker": $0.worker ?? "?", "heartbeat_age_seconds": $0.heartbeatAgeSeconds,
                 "attempt": $0.attempt, "progress": Output.parse($0.progress)] as [String: Any]
            },
            "recent_failures": status.failures.map {
                ["id": $0.id, "task": $0.task, "finished_at": Self.finished($0), "error": $0.error] as [String: Any]
            },
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
        print("Oldest due job waiting: \(status.oldestWaitingSeconds.map(Output.duration) ?? "none")")
        print("\nRunning")
        if running.isEmpty {
            print("  none")
        } else {
            Output.table(["ID", "TASK", "ATTEMPT", "WORKER", "HEARTBEAT AGE", "PROGRESS"], running.map {
                [String($0.id), $0.task, String($0.attempt), $0.worker ?? "?", Output.duration($0.heartbeatAgeSeconds), String(($0.progress ?? "").prefix(60))]
            })
        }
        print("\nRecent failures (failed for good, or waiting for a retry)")
        if status.failures.isEmpty {
            print("  none")
        } else {
            Output.table(["ID", "TASK", "FINISHED", "LAST ERROR"], status.failures.map {
                [String($0.id), $0.task, Self.finished($0), String($0.error.prefix(100))]
            })
        }
        if !cycles.isEmpty {
            print("\nRecent cycle runs")
            Output.table(["RUN", "CYCLE", "PERIOD", "STATE", "STARTED", "FINISHED"], cycles.map {
                [String($0.id), $0.cycle, $0.period, $0.state, $0.started, $0.finished ?? "-"]
            })
        }
    }
}
