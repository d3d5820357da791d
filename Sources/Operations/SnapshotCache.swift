import Foundation

/// A value loaded at most once per interval, shared by every caller: a storm of requests
/// costs one load per interval. Concurrent callers during a load wait for that load instead of
/// starting their own. Failures are remembered for the interval too, so an unreachable
/// database is not hammered either.
final class SnapshotCache<Value>: @unchecked Sendable {
    // @unchecked: the cached `OperationsSnapshot` holds JSON trees (`[String: Any]`), which
    // Swift cannot prove Sendable, so `LockedBox` (Sendable only for Sendable values) cannot
    // hold it. Every field is guarded by `condition`, and a loaded value is never mutated after
    // `load` returns (callers only read it). Goes once the status model is typed (issue 14, item 3).
    private let condition = NSCondition()
    private let ttl: TimeInterval
    private var stored: (result: Result<Value, any Error>, at: Date)?
    private var loading = false
    private var loads = 0

    /// - Parameter ttl: seconds a loaded value (or failure) is reused; 0 loads on every call.
    init(ttl: TimeInterval) {
        self.ttl = max(0, ttl)
    }

    /// The cached value, loading it with `load` when it is older than the interval.
    /// Returns the value's result and the time it was loaded.
    func get(_ load: () throws -> Value) -> (result: Result<Value, any Error>, at: Date) {
        condition.lock()
        while true {
            if let stored, Date().timeIntervalSince(stored.at) < ttl {
                condition.unlock()
                return stored
            }
            guard loading else { break }
            condition.wait()
            // A load just finished (or failed): its result is fresh for this caller too.
            if let stored, !loading { condition.unlock(); return stored }
        }
        loading = true
        loads += 1
        condition.unlock()
        let result = Result { try load() }
        let entry = (result: result, at: Date())
        condition.lock()
        stored = entry
        loading = false
        condition.broadcast()
        condition.unlock()
        return entry
    }

    /// How many loads ran so far.
    var loadCount: Int { condition.withLock { loads } }

    /// Forgets the value, so the next call loads (after an action changed the data).
    func invalidate() {
        condition.withLock { stored = nil }
    }
}
