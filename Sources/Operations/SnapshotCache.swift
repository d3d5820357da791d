import Foundation
import Toolkit

/// A value loaded at most once per interval, shared by every caller: a storm of requests
/// costs one load per interval. Concurrent callers during a load wait for that load instead of
/// starting their own. Failures are remembered for the interval too, so an unreachable
/// database is not hammered either.
///
/// Callers are the HTTP server's handler threads (they may block), never Swift's cooperative pool.
final class SnapshotCache<Value: Sendable>: Sendable {
    private struct State: Sendable {
        var stored: (result: Result<Value, any Error>, at: Date)?
        /// Loads started and loads finished so far.
        var started = 0
        var finished = 0
    }

    private let ttl: TimeInterval
    private let state = LockedBox(State())
    /// Held for the duration of a load: callers that find the value stale queue here.
    private let loadGate = LockedBox(())

    /// - Parameter ttl: seconds a loaded value (or failure) is reused; 0 loads on every call.
    init(ttl: TimeInterval) {
        self.ttl = max(0, ttl)
    }

    /// The cached value, loading it with `load` when it is older than the interval.
    /// Returns the value's result and the time it was loaded.
    func get(_ load: () throws -> Value) -> (result: Result<Value, any Error>, at: Date) {
        let (fresh, seen) = state.withLock { s in (freshEntry(s), s.finished) }
        if let fresh { return fresh }
        return loadGate.withLock { _ in
            // A load finished while this caller waited: its result is fresh for this caller too.
            if let done = state.withLock({ s in s.finished > seen ? s.stored : nil }) { return done }
            state.withLock { $0.started += 1 }
            let entry = (result: Result { try load() }, at: Date())
            state.withLock { s in
                s.stored = entry
                s.finished += 1
            }
            return entry
        }
    }

    /// How many loads ran so far.
    var loadCount: Int { state.withLock { $0.started } }

    /// Forgets the value, so the next call loads (after an action changed the data).
    func invalidate() {
        state.withLock { $0.stored = nil }
    }

    private func freshEntry(_ s: State) -> (result: Result<Value, any Error>, at: Date)? {
        guard let stored = s.stored, Date().timeIntervalSince(stored.at) < ttl else { return nil }
        return stored
    }
}
