import PostgresClient

/// The state of a `maintenance_jobs` row: the values its CHECK constraint allows
/// (migration 0001), in the order a job passes through them.
///
/// `available` → `running` (claimed) → `succeeded`, `failed`, or back to `available` for a
/// retry or a release; `cancelled` from `available` or `running`. SQL that the queue runs
/// spells these values in `QueueStore` and the migrations; Swift code compares with this type.
public enum JobState: String, Sendable, CaseIterable, PostgresDecodable {
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

    /// Reads the column value; nil for a value outside the enum.
    public init?(postgresText: String) { self.init(rawValue: postgresText) }
}
