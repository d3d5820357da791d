import ArgumentParser
import Foundation
import JobQueue
import PostgresClient

/// `closebell jobs list|show|retry|cancel`.
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List, show, retry and cancel jobs.",
        subcommands: [List.self, Show.self, Retry.self, Cancel.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs, newest first.")
        @OptionGroup var database: DatabaseOptions
        @Option(help: "Only this state (available, running, succeeded, failed, cancelled).") var state: String?
        @Option(help: "Only this task.") var task: String?
        @Option(help: "Only this cycle run.") var run: Int64?
        @Option(help: "At most this many rows (default 50).") var limit: Int = 50
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            if let state, JobState(rawValue: state) == nil {
                throw ValidationError("--state must be one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }

        func run() async throws {
            let connection = try await PostgresConnection.connect(database.conninfo, applicationName: "closebell jobs")
            let rows = try await connection.query("""
                SELECT id, task, state, attempts, max_attempts, priority, run_id,
                       to_char(created_at, 'YYYY-MM-DD HH24:MI:SS') AS created,
                       extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8 AS seconds,
                       coalesce(errors -> -1 ->> 'error', '') AS last_error
                FROM maintenance_jobs
                WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR task = $2)
                  AND ($3::bigint IS NULL OR run_id = $3)
                ORDER BY id DESC LIMIT $4
                """, [state, task, self.run, limit])
            if json {
                Output.json(rows.map { row -> [String: Any] in
                    ["id": Int64(row["id"] ?? "") ?? 0, "task": row["task"] ?? "", "state": row["state"] ?? "",
                     "attempts": Int(row["attempts"] ?? "") ?? 0, "max_attempts": Int(row["max_attempts"] ?? "") ?? 0,
                     "run_id": row["run_id"].flatMap { Int64($0) }.map { $0 as Any } ?? NSNull(),
                     "created_at": row["created"] ?? "", "last_error": row["last_error"] ?? ""]
                })
                return
            }
            Output.table(["ID", "TASK", "STATE", "ATTEMPTS", "RUN", "CREATED", "DURATION", "LAST ERROR"], rows.map { row in
                [row["id"] ?? "", row["task"] ?? "", row["state"] ?? "",
                 "\(row["attempts"] ?? "0")/\(row["max_attempts"] ?? "")", row["run_id"] ?? "-", row["created"] ?? "",
                 row["seconds"].flatMap(Double.init).map(Output.duration) ?? "-", String((row["last_error"] ?? "").prefix(80))]
            })
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one job with its errors, result and progress.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "Job id.") var id: Int64
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let connection = try await PostgresConnection.connect(database.conninfo, applicationName: "closebell jobs")
            guard let row = try await connection.query(
                "SELECT to_jsonb(j) AS job FROM maintenance_jobs j WHERE id = $1", [id]).first, let text = row["job"] else {
                throw CommandFailure("no job \(id)")
            }
            let object = Output.parse(text)
            if json {
                Output.json(object)
                return
            }
            guard let job = object as? [String: Any] else { return }
            let order = ["id", "task", "state", "args", "priority", "queue", "attempts", "max_attempts", "run_at", "created_at",
                         "started_at", "finished_at", "locked_by", "heartbeat_at", "lease_expires_at", "run_id", "unique_key",
                         "progress", "result", "errors"]
            for key in order {
                let value = job[key] ?? NSNull()
                let rendered: String
                if value is NSNull {
                    rendered = "-"
                } else if value is [Any] || value is [String: Any] {
                    let data = (try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys])) ?? Data()
                    rendered = String(decoding: data, as: UTF8.self)
                } else {
                    rendered = "\(value)"
                }
                print("\(key.padding(toLength: 17, withPad: " ", startingAt: 0)) \(rendered)")
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put a failed or cancelled job back in the queue (its errors are kept).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "Job id.") var id: Int64

        func run() async throws {
            let connection = try await PostgresConnection.connect(database.conninfo, applicationName: "closebell jobs")
            let ids = [id]
            try report(try await connection.withSession { try QueueStore.retry($0, ids: ids) }, id: id, wanted: "failed or cancelled")
            print("job \(id) is available again")
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a waiting or running job (a running one stops within a heartbeat).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "Job id.") var id: Int64

        func run() async throws {
            let connection = try await PostgresConnection.connect(database.conninfo, applicationName: "closebell jobs")
            let ids = [id]
            try report(try await connection.withSession { try QueueStore.cancel($0, ids: ids) }, id: id, wanted: "available or running")
            print("job \(id) cancelled")
        }
    }
}

/// Throws the error for retry/cancel of a job that is missing or was in the wrong state.
private func report(_ changes: [JobChange], id: Int64, wanted: String) throws {
    guard let change = changes.first(where: { $0.id == id }) else { throw CommandFailure("no job \(id)") }
    guard change.changed else { throw CommandFailure("job \(id) is \(change.state.rawValue), not \(wanted); nothing changed") }
}
