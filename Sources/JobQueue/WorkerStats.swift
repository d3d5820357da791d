import Foundation
import Toolkit

/// Counters a worker keeps about itself, for `/status`, `/metrics` and logs.
public final class WorkerStats: Sendable {
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

    private struct Counters {
        var finished: [String: [String: Int]] = [:]
        var seconds: [String: Double] = [:]
        var buckets = [Int](repeating: 0, count: WorkerStats.bucketBounds.count + 1)
        var total = 0
        var alive = false
        var databaseError: String?
        var heartbeat: Date?
    }

    private let counters = LockedBox(Counters())
    private let started = Date()

    func recordFinished(task: String, outcome: JobOutcome, seconds duration: Double) {
        let name: String
        switch outcome {
        case .succeeded: name = "succeeded"
        case .failed: name = "failed"
        case .cancelled: name = "cancelled"
        }
        let index = Self.bucketBounds.firstIndex { duration <= $0 } ?? Self.bucketBounds.count
        counters.withLock { c in
            c.finished[task, default: [:]][name, default: 0] += 1
            c.seconds[task, default: 0] += duration
            c.buckets[index] += 1
            c.total += 1
        }
    }

    func markLoops(alive value: Bool) { counters.withLock { $0.alive = value } }
    func markHeartbeat() { counters.withLock { $0.heartbeat = Date() } }
    func markDatabaseOK() { counters.withLock { $0.databaseError = nil } }
    func markDatabaseError(_ text: String) { counters.withLock { $0.databaseError = text } }

    /// True while the worker's loops run.
    public var loopsAlive: Bool { counters.withLock { $0.alive } }

    /// Copies the counters.
    public func snapshot() -> Snapshot {
        let c = counters.value
        var cumulative = 0
        var histogram: [(Double, Int)] = []
        for (i, bound) in Self.bucketBounds.enumerated() {
            cumulative += c.buckets[i]
            histogram.append((bound, cumulative))
        }
        return Snapshot(
            finished: c.finished, secondsByTask: c.seconds, durationBuckets: histogram, jobsFinished: c.total,
            loopsAlive: c.alive, lastDatabaseError: c.databaseError, lastHeartbeat: c.heartbeat, startedAt: started)
    }
}
