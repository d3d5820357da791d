import Foundation

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

    /// Creates a configuration with the defaults above.
    public init(workerID: String? = nil) {
        self.workerID = workerID ?? Self.defaultWorkerID()
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

/// A worker setting that cannot work.
public struct WorkerConfigurationError: Error, CustomStringConvertible {
    /// The setting's name (as in the config file).
    public let key: String
    /// What is wrong with it.
    public let reason: String
    public var description: String { "invalid worker setting \(key): \(reason)" }
}
