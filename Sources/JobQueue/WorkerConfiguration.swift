import Foundation
import PostgresClient
import Toolkit

/// Every interval, limit and timeout of a worker. Defaults suit production; tests shorten them.
public struct WorkerConfiguration: Sendable {
    /// Identifies this worker in `locked_by` (default `host:pid:random`).
    public var workerID: String
    /// The queue to drain (`maintenance_jobs.queue`). Default `default`.
    public var queue = "default"
    /// Jobs run at once. Default 4.
    public var concurrency = 4
    /// Most jobs claimed in one statement when many slots are free. Default 64.
    public var claimBatchSize = 64
    /// Lease of a claimed job; a job whose lease lapses is rescued. Default 60 s.
    public var leaseSeconds = 60.0
    /// Interval between heartbeats; must be well inside the lease. Default: a quarter of it.
    public var heartbeatSeconds: Double?
    /// Fallback polling interval when no NOTIFY arrives. Default 5 s.
    public var pollSeconds = 5.0
    /// Interval between rescues of lapsed leases. Default 10 s.
    public var rescueSeconds = 10.0
    /// Interval between prunes of old finished jobs. Default 1 h.
    public var pruneIntervalSeconds = 3600.0
    /// Age after which finished jobs are pruned. Default 30 days.
    public var pruneAfterSeconds = 30.0 * 86_400
    /// On SIGTERM/SIGINT, how long running jobs may take to finish before they are released.
    /// Default 30 s.
    public var graceSeconds = 30.0
    /// First retry delay; doubles each attempt, with ±25% jitter. Default 5 s.
    public var retryBaseSeconds = 5.0
    /// Longest retry delay. Default 1 h.
    public var retryMaxSeconds = 3600.0
    /// Shortest and longest delay between reconnection attempts. Defaults 0.2 s and 10 s.
    public var reconnectMinSeconds = 0.2
    /// Longest delay between reconnection attempts.
    public var reconnectMaxSeconds = 10.0
    /// When set, the worker exits after the queue has had nothing due for this long (demo,
    /// benchmarks and one-shot cron use). Default nil: run until signalled.
    public var exitWhenIdleSeconds: Double?
    /// Longest run of one attempt, per task name; a task without an entry gets
    /// `defaultTimeLimitSeconds`. Past it the task is stopped (its statement cancelled, its child
    /// processes killed) and the attempt fails with `TimeLimitExceeded`. Default: `backup` 6 h.
    public var timeLimits = WorkerConfiguration.defaultTimeLimits
    /// The default per-task limits: `backup` 6 h.
    public static let defaultTimeLimits: [String: Double] = ["backup": 21_600]
    /// Time limit of tasks not named in `timeLimits`. Default 1 h.
    public var defaultTimeLimitSeconds = 3600.0
    /// After a task was told to stop (cancelled, time limit, shutdown), how long the worker
    /// waits for it to end before giving up on it. At shutdown a job is released only once its
    /// task ended; one still running after this is left to its lease. Default 10 s.
    public var stopWaitSeconds = 10.0
    /// `lock_timeout` of task sessions around DDL (REINDEX, compression settings), so DDL never
    /// queues behind a forgotten transaction (and blocks every reader behind it). Default 30 s.
    public var ddlLockTimeoutSeconds = 30.0
    /// `statement_timeout` of task statements that have a natural bound (catalog and size
    /// queries, not VACUUM or data loads). Default 300 s.
    public var shortStatementTimeoutSeconds = 300.0
    /// TCP keepalives and `tcp_user_timeout` of every connection the worker and its tasks open.
    public var keepalive = ConnectionKeepalive()

    /// Creates a configuration with the defaults above.
    public init(workerID: String? = nil) {
        self.workerID = workerID ?? Self.defaultWorkerID()
    }

    /// The time limit of a task.
    public func timeLimit(for task: String) -> Double { timeLimits[task] ?? defaultTimeLimitSeconds }

    /// The session limits handed to tasks.
    public var taskTimeouts: TaskTimeouts {
        TaskTimeouts(ddlLockSeconds: ddlLockTimeoutSeconds, shortStatementSeconds: shortStatementTimeoutSeconds)
    }

    /// The effective heartbeat interval.
    public var effectiveHeartbeatSeconds: Double { heartbeatSeconds ?? leaseSeconds / 4 }

    /// Refuses settings that cannot work, naming the setting.
    public func validate() throws {
        func require(_ ok: Bool, _ key: String, _ why: String) throws {
            if !ok { throw WorkerConfigurationError(key: key, reason: why) }
        }
        try require(concurrency >= 1, "concurrency", "must be at least 1")
        try require(claimBatchSize >= 1, "claim_batch_size", "must be at least 1")
        try require(leaseSeconds > 0, "lease_seconds", "must be positive")
        try require(effectiveHeartbeatSeconds > 0 && effectiveHeartbeatSeconds < leaseSeconds / 2, "heartbeat_seconds",
                    "must be positive and less than half the lease (\(leaseSeconds) s)")
        try require(pollSeconds > 0, "poll_seconds", "must be positive")
        try require(rescueSeconds > 0, "rescue_interval_seconds", "must be positive")
        try require(graceSeconds >= 0, "grace_seconds", "must not be negative")
        try require(retryBaseSeconds >= 0 && retryMaxSeconds >= retryBaseSeconds, "retry_base_seconds", "need 0 <= base <= max")
        try require(!queue.isEmpty, "queue", "must not be empty")
        try require(defaultTimeLimitSeconds > 0, "time_limits.default", "must be positive")
        for (task, limit) in timeLimits.sorted(by: { $0.key < $1.key }) {
            try require(limit > 0, "time_limits.\(task)", "must be positive")
        }
        try require(stopWaitSeconds >= 0, "stop_wait_seconds", "must not be negative")
        try require(ddlLockTimeoutSeconds >= 0, "ddl_lock_timeout_seconds", "must not be negative (0 waits without limit)")
        try require(shortStatementTimeoutSeconds >= 0, "statement_timeout_seconds", "must not be negative (0 waits without limit)")
        try require(keepalive.idleSeconds >= 1, "tcp_keepalives_idle_seconds", "must be at least 1")
        try require(keepalive.intervalSeconds >= 1, "tcp_keepalives_interval_seconds", "must be at least 1")
        try require(keepalive.count >= 1, "tcp_keepalives_count", "must be at least 1")
        try require(keepalive.userTimeoutSeconds >= 0, "tcp_user_timeout_seconds", "must not be negative (0 keeps the kernel's)")
    }

    /// The retry delay after `attempt` failed: base × 2^(attempt−1), capped, with ±25% jitter.
    public func retryDelay(afterAttempt attempt: Int) -> Double {
        let exponential = retryBaseSeconds * pow(2, Double(max(0, attempt - 1)))
        let capped = min(retryMaxSeconds, exponential)
        return max(0, capped * Double.random(in: 0.75...1.25))
    }

    static func defaultWorkerID() -> String {
        let host = ProcessInfo.processInfo.hostName
        return "\(host):\(getpid()):\(String(UInt16.random(in: 0...UInt16.max), radix: 16))"
    }
}

extension WorkerConfiguration: Decodable {
    /// The keys of the config file's `worker:` section.
    enum CodingKeys: String, CodingKey {
        case queue, concurrency
        case claimBatchSize = "claim_batch_size", leaseSeconds = "lease_seconds", heartbeatSeconds = "heartbeat_seconds"
        case pollSeconds = "poll_seconds", rescueSeconds = "rescue_interval_seconds", graceSeconds = "grace_seconds"
        case retryBaseSeconds = "retry_base_seconds", retryMaxSeconds = "retry_max_seconds"
        case pruneAfterDays = "prune_after_days", pruneIntervalSeconds = "prune_interval_seconds"
        case timeLimits = "time_limits", stopWaitSeconds = "stop_wait_seconds"
        case ddlLockTimeoutSeconds = "ddl_lock_timeout_seconds", shortStatementTimeoutSeconds = "statement_timeout_seconds"
        case keepaliveIdle = "tcp_keepalives_idle_seconds", keepaliveInterval = "tcp_keepalives_interval_seconds"
        case keepaliveCount = "tcp_keepalives_count", userTimeout = "tcp_user_timeout_seconds", connectTimeout = "connect_timeout_seconds"
    }

    /// Reads the `worker:` section: every key optional (the defaults above), each value checked,
    /// then the whole validated (`validate`), a refusal naming the key.
    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        queue = try c.setting(.queue, queue)
        concurrency = try c.setting(.concurrency, concurrency, min: 1)
        claimBatchSize = try c.setting(.claimBatchSize, claimBatchSize, min: 1)
        leaseSeconds = try c.setting(.leaseSeconds, leaseSeconds, min: 0.1)
        heartbeatSeconds = try c.setting(.heartbeatSeconds, heartbeatSeconds, min: 0.01)
        pollSeconds = try c.setting(.pollSeconds, pollSeconds, min: 0.01)
        rescueSeconds = try c.setting(.rescueSeconds, rescueSeconds, min: 0.01)
        graceSeconds = try c.setting(.graceSeconds, graceSeconds, min: 0)
        retryBaseSeconds = try c.setting(.retryBaseSeconds, retryBaseSeconds, min: 0)
        retryMaxSeconds = try c.setting(.retryMaxSeconds, retryMaxSeconds, min: 0)
        pruneAfterSeconds = try c.setting(.pruneAfterDays, pruneAfterSeconds / 86_400, min: 0) * 86_400
        pruneIntervalSeconds = try c.setting(.pruneIntervalSeconds, pruneIntervalSeconds, min: 1)
        // Task names are data: any key is a task, `default` the rest.
        try c.forEachEntry(of: .timeLimits) { limits, key in
            let seconds = try limits.setting(key, defaultTimeLimitSeconds, min: 0.001)
            if key.stringValue == "default" { defaultTimeLimitSeconds = seconds } else { timeLimits[key.stringValue] = seconds }
        }
        stopWaitSeconds = try c.setting(.stopWaitSeconds, stopWaitSeconds, min: 0)
        ddlLockTimeoutSeconds = try c.setting(.ddlLockTimeoutSeconds, ddlLockTimeoutSeconds, min: 0)
        shortStatementTimeoutSeconds = try c.setting(.shortStatementTimeoutSeconds, shortStatementTimeoutSeconds, min: 0)
        keepalive.idleSeconds = try c.setting(.keepaliveIdle, keepalive.idleSeconds, min: 1)
        keepalive.intervalSeconds = try c.setting(.keepaliveInterval, keepalive.intervalSeconds, min: 1)
        keepalive.count = try c.setting(.keepaliveCount, keepalive.count, min: 1)
        keepalive.userTimeoutSeconds = try c.setting(.userTimeout, keepalive.userTimeoutSeconds, min: 0)
        keepalive.connectTimeoutSeconds = try c.setting(.connectTimeout, keepalive.connectTimeoutSeconds, min: 1)
        do {
            try validate()
        } catch let error as WorkerConfigurationError {
            throw DecodingError.invalidSetting(c.codingPath, section: "worker", dottedKey: error.key, error.reason)
        }
    }
}

/// A worker setting that cannot work.
public struct WorkerConfigurationError: Error, CustomStringConvertible {
    /// The setting's name (as in the config file).
    public let key: String
    /// What is wrong with it.
    public let reason: String
    public var description: String { "invalid worker setting \(key): \(reason)" }
}
