import JobQueue
import PostgresClient
import Toolkit

/// What went wrong in a maintenance task or cycle call, with the names a user needs to fix it.
public enum MaintenanceError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A table name that is not a plain (optionally schema-qualified) SQL identifier. Refused
    /// before it reaches the database, so nothing can be injected through config or args.
    case invalidTableName(String)
    /// A column name that is not a plain SQL identifier.
    case invalidColumnName(table: String, column: String)
    /// A table named in job args that does not exist (or is not a table).
    case unknownTable(String)
    /// A table named in `retention` args that has no retention rule.
    case tableNotConfigured(table: String, configured: [String])
    /// A configured column missing from its table.
    case unknownColumn(table: String, column: String)
    /// A retention column whose type is not `date`, `timestamp` or `timestamptz`.
    case unsupportedColumnType(table: String, column: String, type: String)
    /// A setting outside its allowed range (`key` is the settings field / YAML key).
    case invalidSetting(key: String, reason: String)
    /// A cycle name the database does not know (`known` lists the ones it does).
    case unknownCycle(name: String, known: [String])
    /// The cycle was not enqueued: not a trading day, or the cycle is disabled.
    case cycleNotEnqueued(cycle: String, period: String, reason: String)
    /// A database error, with the statement's purpose (never its parameters).
    case database(operation: String, error: PostgresError)

    public var description: String {
        switch self {
        case .invalidTableName(let name):
            return "invalid table name \"\(name)\": use a plain identifier, optionally schema-qualified (letters, digits, _ and $)"
        case .invalidColumnName(let table, let column):
            return "invalid column name \"\(column)\" for table \(table): use a plain identifier"
        case .unknownTable(let name):
            return "table \"\(name)\" does not exist"
        case .tableNotConfigured(let table, let configured):
            return "table \"\(table)\" has no retention rule (configured: \(configured.joined(separator: ", ")))"
        case .unknownColumn(let table, let column):
            return "table \(table) has no column \"\(column)\""
        case .unsupportedColumnType(let table, let column, let type):
            return "column \(column) of \(table) is \(type); retention needs date, timestamp or timestamptz"
        case .invalidSetting(let key, let reason):
            return "invalid setting \(key): \(reason)"
        case .unknownCycle(let name, let known):
            return "unknown cycle \"\(name)\" (known: \(known.joined(separator: ", ")))"
        case .cycleNotEnqueued(let cycle, let period, let reason):
            return "cycle \(cycle) not enqueued for \(period): \(reason)"
        case .database(let operation, let error):
            return "\(operation): \(error)"
        }
    }
}

extension MaintenanceError: JobFailure {
    /// Only database errors may pass (through `PostgresError.retryable`); bad names, unknown or
    /// unconfigured tables, invalid settings and unknown cycles fail the job at once.
    public var retryable: Bool {
        switch self {
        case .database(_, let error): return error.retryable
        case .invalidTableName, .invalidColumnName, .unknownTable, .tableNotConfigured, .unknownColumn,
             .unsupportedColumnType, .invalidSetting, .unknownCycle, .cycleNotEnqueued:
            return false
        }
    }
}

extension MaintenanceError {
    /// A settings check's refusal (`validate()`) as the decoding error of the config section at
    /// `path`, named `section`, so that it names the key: `retention.batch_size`,
    /// `vacuum.tables`, `retention.tables.T.column`.
    func settingError(at path: [any CodingKey], section: String) -> DecodingError {
        switch self {
        case .invalidSetting(let key, let reason):
            return DecodingError.invalidSetting(path, section: section, dottedKey: key, reason)
        case .invalidColumnName(let table, _):
            return DecodingError.invalidSetting(path + [SettingKey(stringValue: "tables"), SettingKey(stringValue: table)], "column", description)
        default:
            return DecodingError.invalidSetting(path, "tables", description)
        }
    }
}
