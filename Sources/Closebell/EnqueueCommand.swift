import ArgumentParser
import Foundation
import JobQueue
import PostgresClient

/// `closebell enqueue`: adds a job, or one run of a cycle.
struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Add a job (TASK [--args JSON]) or one run of a cycle (--cycle NAME).",
        discussion: """
            A cycle's run is created once per period. Today's run of a trading-day cycle is not
            created before the cycle's local time (daily: 17:00 New York) unless --force is given.
            Exit status: 0 when the job or run was added, or when nothing was enqueued because the
            run exists, is not due yet, or the day is closed (the message says which); 1 when the
            database refused it (the message names what is wrong and the known tasks); 64 bad
            usage; 69 database unreachable.
            """)

    @OptionGroup var database: DatabaseOptions

    @Argument(help: "Task name (noop, ohlc_daily, volume_slots, metadata_enrich, volume_stats, universe_sync, retention, vacuum, compress, backup, table_sizes).")
    var task: String?

    @Option(help: "Arguments as a JSON object, e.g. '{\"days\": 30}'.")
    var args: String = "{}"

    @Option(help: "Higher runs first (default 0).")
    var priority: Int = 0

    @Option(help: "Run no earlier than this many seconds from now.")
    var delay: Double?

    @Option(name: .customLong("max-attempts"), help: "Attempts before the job fails for good (default 5).")
    var maxAttempts: Int?

    @Option(name: .customLong("unique-key"), help: "Skip the insert when a waiting or running job has this key.")
    var uniqueKey: String?

    @Option(help: "Queue name (default: default).")
    var queue: String = "default"

    @Option(help: "Enqueue one run of this cycle (daily, weekly, monthly, quarterly, or one of your own) instead of a task.")
    var cycle: String?

    @Option(help: "With --cycle: the period's date (YYYY-MM-DD; default today in New York).")
    var period: String?

    @Flag(help: "With --cycle: enqueue even before the cycle's time, on a non-trading day, or for a disabled cycle.")
    var force = false

    @Option(help: ArgumentHelp("With --cycle: judge as at this moment (ISO 8601, e.g. 2026-12-07T10:00:00-05:00) instead of now.", visibility: .hidden))
    var at: String?

    @Flag(help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        if (task == nil) == (cycle == nil) { throw ValidationError("give either a TASK or --cycle NAME") }
        if let maxAttempts, maxAttempts < 1 { throw ValidationError("--max-attempts must be at least 1") }
        if let period {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "UTC")
            formatter.dateFormat = "yyyy-MM-dd"
            guard formatter.date(from: period) != nil, period.count == 10 else {
                throw ValidationError("--period must be a date YYYY-MM-DD, got \(period)")
            }
        }
        if let at, ISO8601DateFormatter().date(from: at) == nil {
            throw ValidationError("--at must be an ISO 8601 time with offset, e.g. 2026-12-07T10:00:00-05:00, got \(at)")
        }
        guard (try? JSONSerialization.jsonObject(with: Data(args.utf8))) is [String: Any] else {
            throw ValidationError("--args must be a JSON object, e.g. '{\"days\": 30}'")
        }
    }

    func run() async throws {
        let connection = try await PostgresConnection.connect(database.conninfo, applicationName: "closebell enqueue")
        do {
            if let cycle {
                try await enqueueCycle(cycle, connection)
            } else if let task {
                try await enqueueTask(task, connection)
            }
        } catch let error as PostgresError {
            throw CommandFailure("refused: \(error)")
        }
    }

    private func enqueueTask(_ task: String, _ connection: PostgresConnection) async throws {
        let runAt = delay.map { Date().addingTimeInterval($0) }
        let (args, priority, maxAttempts, uniqueKey, queue) = (PostgresJSON(text: self.args), self.priority, self.maxAttempts, self.uniqueKey, self.queue)
        let id = try await connection.withSession { session in
            try QueueStore.enqueue(session, task: task, args: args, priority: priority, runAt: runAt,
                                   maxAttempts: maxAttempts, uniqueKey: uniqueKey, queue: queue)
        }
        if json {
            Output.json(["enqueued": id != nil, "id": id.map { NSNumber(value: $0) } ?? NSNull(), "task": task] as [String: Any])
        } else if let id {
            print("enqueued job \(id) (\(task))")
        } else {
            print("not enqueued: a waiting or running job already has unique key \(uniqueKey ?? "")")
        }
    }

    private func enqueueCycle(_ cycle: String, _ connection: PostgresConnection) async throws {
        let moment = at.flatMap { ISO8601DateFormatter().date(from: $0) }
        let row = try await connection.query(
            """
            SELECT run_id, created, period::text AS period, note, due_at
              FROM maintenance_enqueue_cycle($1, $2::date, $3, coalesce($4::timestamptz, now()))
            """,
            [cycle, period, force, moment]).first
        let runID = try row?.decodeIfPresent("run_id", as: Int64.self)
        let created = try row?.decodeIfPresent("created", as: Bool.self) ?? false
        let note = row?["note"] ?? ""
        if json {
            Output.json(["cycle": cycle, "run_id": runID.map { NSNumber(value: $0) } ?? NSNull(), "created": created,
                         "period": row?["period"] ?? "", "note": note, "due_at": row?["due_at"] ?? NSNull()] as [String: Any])
        } else if let runID, created {
            print("enqueued \(cycle) cycle run \(runID) for \(row?["period"] ?? "")")
        } else if let runID {
            print("\(cycle) cycle run \(runID) already exists for \(row?["period"] ?? "this period"); nothing enqueued")
        } else {
            print("\(cycle) cycle not enqueued: \(note)")
        }
    }
}
