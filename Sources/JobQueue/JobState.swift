import PostgresClient

/// The state of a `maintenance_jobs` row: the values its CHECK constraint allows
/// (migration 0001), in the order a job passes through them.
///
/// `available` → `running` (claimed) → `succeeded`, `failed`, or back to `available` for a
/// retry or a release; `cancelled` from `available` or `running`. SQL that the queue runs
/// spells these values in `QueueStore` and the migrations; Swift code compares with this type.
public enum JobState: String, Sendable, Codable, CaseIterable, PostgresDecodable, PostgresBindable {
    /// Waiting for its `run_at`, then for a worker to claim it.
    case available
    /// Claimed by a worker that holds its lease.
    case running
    /// The task returned a result.
    case succeeded
    /// The last attempt failed, or a failure was not retryable.
    case failed
    /// Cancelled by a user or a cycle cancellation.
    case cancelled

    /// True for the states a job never leaves (`succeeded`, `failed`, `cancelled`).
    public var isFinished: Bool {
        switch self {
        case .available, .running: return false
        case .succeeded, .failed, .cancelled: return true
        }
    }

    /// The states a job never leaves, for SQL that binds them (`state = ANY($1::text[])`).
    public static let finished: [JobState] = allCases.filter(\.isFinished)

    /// Reads the column value; nil for a value outside the enum.
    public init?(postgresText: String) { self.init(rawValue: postgresText) }

    /// The column value, for binding as a statement parameter.
    public var postgresText: String? { rawValue }
}
