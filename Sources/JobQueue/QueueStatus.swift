import Foundation

/// The queue at a glance, read by `QueueStore.status`: what `closebell status` prints as text
/// and the operations endpoint serves as JSON (`/status`, `/metrics`, the dashboard).
public struct QueueStatus: Codable, Sendable, Equatable {
    /// Jobs of one task in one state.
    public struct Depth: Codable, Sendable, Equatable {
        /// The task name.
        public var task: String
        /// The state.
        public var state: JobState
        /// Every such row in the table.
        public var count: Int
        /// Those waiting or running, or finished in the last 24 hours.
        public var recent: Int
    }

    /// A job a worker holds.
    public struct RunningJob: Codable, Sendable, Equatable {
        /// `maintenance_jobs.id`.
        public var id: Int64
        /// The task name.
        public var task: String
        /// The attempt running (1 for the first).
        public var attempt: Int
        /// The row's `max_attempts`.
        public var maxAttempts: Int
        /// The worker holding it (`locked_by`).
        public var worker: String?
        /// The cycle run, if any.
        public var runID: Int64?
        /// The arguments as JSON text.
        public var args: String?
        /// The task's checkpoint as JSON text.
        public var progress: String?
        /// When this attempt started.
        public var startedAt: Date?
        /// The last heartbeat.
        public var heartbeatAt: Date?
        /// Seconds since the attempt started.
        public var runningSeconds: Double
        /// Seconds since the last heartbeat.
        public var heartbeatAgeSeconds: Double
    }

    /// A job that failed for good, was cancelled, or waits for a retry after a failed attempt.
    public struct Failure: Codable, Sendable, Equatable {
        /// `maintenance_jobs.id`.
        public var id: Int64
        /// The task name.
        public var task: String
        /// `failed`, `cancelled`, or `available` (waiting for a retry).
        public var state: JobState
        /// Attempts made.
        public var attempts: Int
        /// The row's `max_attempts`.
        public var maxAttempts: Int
        /// The cycle run, if any.
        public var runID: Int64?
        /// The last attempt's error ("" when none was recorded).
        public var error: String
        /// When it finished; nil while it waits for a retry.
        public var finishedAt: Date?
        /// When it was inserted.
        public var createdAt: Date
    }

    /// A job waiting to run.
    public struct Waiting: Codable, Sendable, Equatable {
        /// `maintenance_jobs.id`.
        public var id: Int64
        /// The task name.
        public var task: String
        /// The queue it waits in.
        public var queue: String
        /// Higher runs first.
        public var priority: Int
        /// Not before this time.
        public var runAt: Date
        /// Attempts made so far.
        public var attempts: Int
        /// The cycle run, if any.
        public var runID: Int64?
    }

    /// Jobs by task and state, ordered by task, then state.
    public var depth: [Depth]
    /// Age of the oldest job that is due but not claimed; nil when none waits.
    public var oldestWaitingSeconds: Double?
    /// Running jobs, longest running first.
    public var running: [RunningJob]
    /// Failed, cancelled (when asked for) and retrying jobs: retrying first, then newest finished.
    public var failures: [Failure]
    /// The next jobs to run, soonest first.
    public var waiting: [Waiting]
}
