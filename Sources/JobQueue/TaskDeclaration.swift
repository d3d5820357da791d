import Foundation
import PostgresClient
import SchemaMigrations

/// The JSON type of one task argument, as `maintenance_check_task_args` checks it.
public enum ArgumentType: String, Sendable, Codable, CaseIterable {
    /// A non-negative whole number up to 2147483647.
    case integer
    /// Any JSON number.
    case number
    /// A JSON string.
    case string
    /// `true` or `false`.
    case boolean
    /// A string `YYYY-MM-DD` that is a real date.
    case date
    /// An array of strings.
    case stringArray = "string_array"
    /// A JSON object.
    case object
}

/// What a task declares about itself, once, next to its arguments: its name in
/// `maintenance_jobs.task`, the argument keys with their types, a one-line summary, and the
/// standard result fields it always writes.
///
/// The worker upserts every registered declaration into `maintenance_task_types` at start
/// (`TaskRegistry.publish`), so the database validates a psql INSERT against the same schema
/// the task decodes with.
public struct TaskDeclaration: Sendable, Equatable {
    /// The value of `maintenance_jobs.task`.
    public let name: String
    /// Each argument key with its JSON type (`maintenance_task_types.arg_types`).
    public let arguments: [String: ArgumentType]
    /// `maintenance_task_types.description`.
    public let summary: String
    /// The standard result fields every successful run writes (checked by a test that runs
    /// every registered task).
    public let reports: [ResultField]

    /// Declares a task.
    public init(name: String, arguments: [String: ArgumentType] = [:], summary: String, reports: [ResultField] = []) {
        self.name = name
        self.arguments = arguments
        self.summary = summary
        self.reports = reports
    }

    /// The keys a job's `args` may have.
    public var argumentKeys: Set<String> { Set(arguments.keys) }

    /// `arguments` as the JSON object stored in `arg_types`.
    public var argumentTypesJSON: PostgresJSON {
        // Encoding a [String: String] cannot fail.
        (try? PostgresJSON(encoding: arguments.mapValues(\.rawValue))) ?? PostgresJSON(text: "{}")
    }
}

/// The fields of `maintenance_jobs.result` that SQL reads (the report, the metrics, the
/// dashboard, the demo): their keys and JSON types are defined here and nowhere else. A task
/// lists in `TaskDeclaration.reports` the ones it writes; its result type encodes them under
/// these keys.
public enum ResultField: String, Sendable, CaseIterable, Codable {
    /// Rows inserted or updated (a number).
    case rowsWritten = "rows_written"
    /// Rows deleted, over every table (a number).
    case totalRowsRemoved = "total_rows_removed"
    /// Rows handled, for tasks that neither write nor delete market data (a number).
    case rows
    /// Bytes given back to the filesystem (a number).
    case bytesFreed = "bytes_freed"
    /// The file written (a string).
    case path
    /// The size of the file written (a number).
    case bytes
    /// Wall time of the run (a number).
    case seconds

    /// The `jsonb_typeof` of the field's value.
    public var jsonType: String {
        switch self {
        case .path: "string"
        case .rowsWritten, .totalRowsRemoved, .rows, .bytesFreed, .bytes, .seconds: "number"
        }
    }
}

/// The standard fields of a stored result, decoded from any task's `maintenance_jobs.result`
/// (absent fields are nil): what the CLI shows of a finished job.
public struct ReportedFields: Decodable, Sendable, Equatable {
    /// `rows_written`.
    public var rowsWritten: Int64?
    /// `total_rows_removed`.
    public var totalRowsRemoved: Int64?
    /// `rows`.
    public var rows: Int64?
    /// `bytes_freed`.
    public var bytesFreed: Int64?
    /// `path`.
    public var path: String?
    /// `bytes`.
    public var bytes: Int64?
    /// `seconds`.
    public var seconds: Double?

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ field: ResultField) { stringValue = field.rawValue }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Decodes the fields `ResultField` names; a field of another JSON type counts as absent.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        func value<T: Decodable>(_ field: ResultField) -> T? { try? container.decodeIfPresent(T.self, forKey: Key(field)) }
        rowsWritten = value(.rowsWritten)
        totalRowsRemoved = value(.totalRowsRemoved)
        rows = value(.rows)
        bytesFreed = value(.bytesFreed)
        path = value(.path)
        bytes = value(.bytes)
        seconds = value(.seconds)
    }

    /// Decodes a stored result; nil when it is not a JSON object.
    public init?(json: String) {
        guard let value = try? JSONDecoder().decode(ReportedFields.self, from: Data(json.utf8)) else { return nil }
        self = value
    }
}

/// What a task's run returns: a `Codable` type whose JSON is stored in
/// `maintenance_jobs.result`. The standard fields (`ResultField`) are encoded under their keys.
public protocol TaskResult: Codable, Sendable {}

extension TaskRegistry {
    /// Upserts every registered task's row of `maintenance_task_types` (name, argument types,
    /// summary) under the migration advisory lock, so a worker with a new task accepts its
    /// INSERTs without a migration. Rows of tasks this worker does not run are left alone
    /// (other workers may run them). Returns the tasks whose row was added or changed.
    public func publish(_ session: PostgresSession) throws -> [String] {
        let rows = declarations.map {
            ["task": $0.name, "arg_types": $0.argumentTypesJSON.text, "description": $0.summary]
        }
        let payload = try PostgresJSON(encoding: rows)
        try session.query("SELECT pg_advisory_lock($1)", [Migrator.lockKey])
        defer { _ = try? session.query("SELECT pg_advisory_unlock($1)", [Migrator.lockKey]) }
        let changed = try session.query(
            """
            INSERT INTO maintenance_task_types AS t (task, arg_types, description)
            SELECT r.task, r.arg_types::jsonb, r.description
              FROM jsonb_to_recordset($1::jsonb) AS r(task text, arg_types text, description text)
            ON CONFLICT (task) DO UPDATE SET arg_types = EXCLUDED.arg_types, description = EXCLUDED.description
             WHERE (t.arg_types, t.description) IS DISTINCT FROM (EXCLUDED.arg_types, EXCLUDED.description)
            RETURNING t.task
            """, [payload])
        return try changed.map { try $0.decode("task", as: String.self) }.sorted()
    }
}
