import Foundation
import Toolkit
import Logging
import PostgresClient

/// A kind of work a `maintenance_jobs` row can name in its `task` column.
///
/// A task declares its name and argument schema once, in `declaration`, next to its arguments;
/// it is registered with the worker by one line in a `TaskRegistry`, and the worker upserts the
/// declaration into `maintenance_task_types` at start, so a psql INSERT naming an unknown task
/// or key is refused at once (SQLSTATE 22023).
public protocol JobTask: Sendable {
    /// What a successful run returns, stored as JSON in `maintenance_jobs.result`.
    associatedtype Output: TaskResult
    /// The task's name, argument types, summary and standard result fields.
    static var declaration: TaskDeclaration { get }
    /// Runs one attempt of a job. Throwing fails the attempt (retried with backoff until
    /// `max_attempts` when the error is retryable); the returned value is stored in
    /// `maintenance_jobs.result`. Long tasks call `context.checkpoint(_:)` and check
    /// `context.isCancelled` between units.
    func run(_ context: JobContext) async throws -> Output
}

extension JobTask {
    /// The value of `maintenance_jobs.task` this implementation runs (`declaration.name`).
    public var name: String { Self.declaration.name }

    /// Decodes the job's `args` strictly: keys the declaration does not list are refused.
    public func arguments<T: Decodable>(_ type: T.Type, of context: JobContext) throws -> T {
        try context.decodeArgs(type, allowedKeys: Self.declaration.argumentKeys)
    }

    /// Runs the job and encodes its result (what the worker stores).
    func runEncoded(_ context: JobContext) async throws -> PostgresJSON {
        try PostgresJSON(encoding: try await run(context))
    }
}

/// Everything a running task may use: its job's identity and arguments, the database, a
/// logger with the job's metadata, progress checkpoints and cancellation.
public final class JobContext: Sendable {
    /// `maintenance_jobs.id`.
    public let jobID: Int64
    /// `maintenance_jobs.task`.
    public let task: String
    /// `maintenance_jobs.args`, as stored.
    public let args: PostgresJSON
    /// This attempt's number, starting at 1.
    public let attempt: Int
    /// The cycle run the job belongs to, if any.
    public let runID: Int64?
    /// The checkpoint saved by an earlier attempt (`maintenance_jobs.progress`), if any.
    public let previousProgress: PostgresJSON?
    /// A logger whose metadata carries job id, task, attempt and run id.
    public let logger: Logger
    /// The connection string of the queue's database (URL, key=value, or empty for `PG*`).
    public let conninfo: String?
    /// Session limits for the task's statements (`lock_timeout` around DDL, `statement_timeout`
    /// of bounded statements).
    public let timeouts: TaskTimeouts
    /// What `connect()` connects with: `conninfo` with the worker's keepalive settings.
    private let connectConninfo: String?
    private let cancellation: CancellationFlag
    private let progressWriter: @Sendable (PostgresJSON) async throws -> Void

    /// Creates a context (the worker does this; tests may too).
    public init(
        jobID: Int64, task: String, args: PostgresJSON, attempt: Int, runID: Int64?,
        previousProgress: PostgresJSON?, logger: Logger, conninfo: String?,
        cancellation: CancellationFlag = CancellationFlag(),
        progressWriter: @escaping @Sendable (PostgresJSON) async throws -> Void = { _ in },
        timeouts: TaskTimeouts = TaskTimeouts(), keepalive: ConnectionKeepalive? = nil
    ) {
        self.jobID = jobID
        self.task = task
        self.args = args
        self.attempt = attempt
        self.runID = runID
        self.previousProgress = previousProgress
        self.logger = logger
        self.conninfo = conninfo
        self.timeouts = timeouts
        // A string libpq cannot parse is passed on as it is: connecting reports the error.
        self.connectConninfo = keepalive.flatMap { try? $0.applied(to: conninfo) } ?? conninfo
        self.cancellation = cancellation
        self.progressWriter = progressWriter
    }

    /// Opens a new connection to the queue's database (on its own thread), with the worker's
    /// keepalive settings. The task owns it and should close it when done. Never hold a
    /// transaction open across long work. Statements on it are cancelled on the server when
    /// the job is stopped (the task's Swift task is cancelled).
    public func connect() async throws -> PostgresConnection {
        try await PostgresConnection.connect(connectConninfo, applicationName: "closebell \(task) #\(jobID)")
    }

    /// True once the job was cancelled (state `cancelled` seen by a heartbeat), its lease
    /// was lost, it ran past its time limit, or the worker is shutting down past its grace period.
    public var isCancelled: Bool { cancellation.isSet || Task.isCancelled }

    /// Throws `JobCancelled` when `isCancelled` is true: call it between units of work.
    public func checkCancellation() throws {
        if isCancelled { throw JobCancelled() }
    }

    /// Saves progress into `maintenance_jobs.progress` so that a retried or rescued attempt
    /// can skip finished work (it reads `previousProgress`).
    public func checkpoint<T: Encodable>(_ progress: T) async throws {
        try await progressWriter(try PostgresJSON(encoding: progress))
    }

    /// Decodes `args` strictly: keys not in `allowedKeys` are refused, with their names.
    public func decodeArgs<T: Decodable>(_ type: T.Type, allowedKeys: Set<String>) throws -> T {
        try JobArguments.decode(type, from: args, allowedKeys: allowedKeys, task: task)
    }
}

/// Session limits of a task's statements, as `SET` commands.
public struct TaskTimeouts: Sendable, Equatable {
    /// `lock_timeout` around DDL, in seconds (0: no limit). Default 30.
    public var ddlLockSeconds: Double
    /// `statement_timeout` of statements with a natural bound, in seconds (0: no limit). Default 300.
    public var shortStatementSeconds: Double

    /// Creates limits; every argument has the documented default.
    public init(ddlLockSeconds: Double = 30, shortStatementSeconds: Double = 300) {
        self.ddlLockSeconds = ddlLockSeconds
        self.shortStatementSeconds = shortStatementSeconds
    }

    /// `SET lock_timeout = …` for the DDL that follows.
    public var setDDLLockTimeout: String { "SET lock_timeout = \(Self.milliseconds(ddlLockSeconds))" }
    /// `SET statement_timeout = …` for bounded statements that follow.
    public var setShortStatementTimeout: String { "SET statement_timeout = \(Self.milliseconds(shortStatementSeconds))" }

    private static func milliseconds(_ seconds: Double) -> Int { Int((max(0, seconds) * 1000).rounded()) }
}

/// Thrown by a task that stopped because its job was cancelled.
public struct JobCancelled: Error, CustomStringConvertible {
    /// Creates the error.
    public init() {}
    public var description: String { "job cancelled" }
}

/// A thread-safe flag the worker sets to ask a running task to stop.
public final class CancellationFlag: Sendable {
    private let raised = LockedBox(false)
    /// Creates an unset flag.
    public init() {}
    /// True once `set()` was called.
    public var isSet: Bool { raised.value }
    /// Raises the flag.
    public func set() { raised.set(true) }
}

/// Strict decoding of job arguments.
public enum JobArguments {
    /// Decodes `json` into `T`, refusing keys outside `allowedKeys` and anything but an object.
    public static func decode<T: Decodable>(_ type: T.Type, from json: PostgresJSON, allowedKeys: Set<String>, task: String) throws -> T {
        let data = Data(json.text.utf8)
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw InvalidJobArguments(task: task, reason: "args must be a JSON object, got \(json.text.prefix(100))")
        }
        let unknown = Set(object.keys).subtracting(allowedKeys)
        if !unknown.isEmpty {
            throw InvalidJobArguments(
                task: task,
                reason: "unknown key(s) \(unknown.sorted().joined(separator: ", ")); allowed: \(allowedKeys.sorted().joined(separator: ", "))")
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            throw InvalidJobArguments(task: task, reason: describe(error))
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
        case .keyNotFound(let key, _):
            return "missing key \(key.stringValue)"
        @unknown default:
            return "\(error)"
        }
    }
}

/// Job arguments that do not fit the task; retrying cannot help, so the job fails at once.
public struct InvalidJobArguments: Error, CustomStringConvertible {
    /// The task whose arguments were wrong.
    public let task: String
    /// What is wrong.
    public let reason: String
    /// Creates the error.
    public init(task: String, reason: String) {
        self.task = task
        self.reason = reason
    }
    public var description: String { "invalid args for task \(task): \(reason)" }
}

/// The set of tasks a worker can run, by name.
public struct TaskRegistry: Sendable {
    private var tasks: [String: any JobTask] = [:]

    /// Creates a registry from task implementations (a later one replaces an earlier name).
    public init(_ tasks: [any JobTask]) {
        for task in tasks { self.tasks[task.name] = task }
    }

    /// The implementation for a name.
    public func task(named name: String) -> (any JobTask)? { tasks[name] }

    /// The registered names, sorted.
    public var names: [String] { tasks.keys.sorted() }

    /// The registered tasks' declarations, by name.
    public var declarations: [TaskDeclaration] { names.compactMap { tasks[$0].map { type(of: $0).declaration } } }
}
