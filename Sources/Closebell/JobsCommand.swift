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
            let (state, task, runID, limit) = (state.flatMap(JobState.init(rawValue:)), task, self.run, limit)
            let jobs = try await connection.withSession { try QueueStore.list($0, state: state, task: task, runID: runID, limit: limit) }
            if json {
                Output.json(jobs.map { job -> [String: Any] in
                    ["id": job.id, "task": job.task, "state": job.state.rawValue, "attempts": job.attempts, "max_attempts": job.maxAttempts,
                     "run_id": job.runID.map { $0 as Any } ?? NSNull(), "created_at": Output.localTime(job.createdAt), "last_error": job.lastError]
                })
                return
            }
            Output.table(["ID", "TASK", "STATE", "ATTEMPTS", "RUN", "CREATED", "DURATION", "LAST ERROR"], jobs.map { job in
                [String(job.id), job.task, job.state.rawValue, "\(job.attempts)/\(job.maxAttempts)", job.runID.map { String($0) } ?? "-",
                 Output.localTime(job.createdAt), job.seconds.map(Output.duration) ?? "-", String(job.lastError.prefix(80))]
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
            let id = self.id
            guard let job = try await connection.withSession({ try QueueStore.job($0, id: id) }) else {
                throw CommandFailure("no job \(id)")
            }
            let object = Output.parse(job.text)
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
