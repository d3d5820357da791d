import Foundation

/// Counters a worker keeps about itself, for `/status`, `/metrics` and logs.
public final class WorkerStats: @unchecked Sendable {
    /// A point-in-time copy of the counters.
    public struct Snapshot: Sendable {
        /// Finished attempts by task and outcome (`succeeded`, `failed`, `cancelled`).
        public var finished: [String: [String: Int]]
        /// Sum of attempt durations by task, in seconds.
        public var secondsByTask: [String: Double]
        /// Duration histogram bucket counts by upper bound in seconds (cumulative at read time).
        public var durationBuckets: [(upperBound: Double, count: Int)]
        /// All finished attempts.
        public var jobsFinished: Int
        /// Whether the loops are running.
        public var loopsAlive: Bool
        /// The last database error seen by housekeeping, nil after a success.
        public var lastDatabaseError: String?
        /// When the last heartbeat round trip succeeded.
        public var lastHeartbeat: Date?
        /// When the worker started.
        public var startedAt: Date
    }

    /// Upper bounds of the duration histogram, in seconds.
    public static let bucketBounds: [Double] = [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600]

    private let lock = NSLock()
    private var finished: [String: [String: Int]] = [:]
    private var seconds: [String: Double] = [:]
    private var buckets = [Int](repeating: 0, count: WorkerStats.bucketBounds.count + 1)
    private var total = 0
    private var alive = false
    private var databaseError: String?
    private var heartbeat: Date?
    private let started = Date()

    func recordFinished(task: String, outcome: JobOutcome, seconds duration: Double) {
        let name: String
        switch outcome {
        case .succeeded: name = "succeeded"
        case .failed: name = "failed"
        case .cancelled: name = "cancelled"
        }
        let index = Self.bucketBounds.firstIndex { duration <= $0 } ?? Self.bucketBounds.count
        lock.withLock {
            finished[task, default: [:]][name, default: 0] += 1
            seconds[task, default: 0] += duration
            buckets[index] += 1
            total += 1
        }
    }

    func markLoops(alive value: Bool) { lock.withLock { alive = value } }
    func markHeartbeat() { lock.withLock { heartbeat = Date() } }
    func markDatabaseOK() { lock.withLock { databaseError = nil } }
    func markDatabaseError(_ text: String) { lock.withLock { databaseError = text } }

    /// True while the worker's loops run.
    public var loopsAlive: Bool { lock.withLock { alive } }

    /// Copies the counters.
    public func snapshot() -> Snapshot {
        lock.withLock {
            var cumulative = 0
            var histogram: [(Double, Int)] = []
            for (i, bound) in Self.bucketBounds.enumerated() {
                cumulative += buckets[i]
                histogram.append((bound, cumulative))
            }
            return Snapshot(
                finished: finished, secondsByTask: seconds, durationBuckets: histogram, jobsFinished: total,
                loopsAlive: alive, lastDatabaseError: databaseError, lastHeartbeat: heartbeat, startedAt: started)
        }
    }
}
