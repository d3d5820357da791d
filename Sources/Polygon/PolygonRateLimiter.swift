import Foundation
import Toolkit

/// Limits Polygon requests: at most `maxConcurrent` in flight and starts spaced at least
/// `1 / requestsPerSecond` apart. Create ONE per process (a `PolygonClient` makes one from its
/// configuration; pass the same limiter to every client you create) so every task shares it.
/// Waiting is asynchronous (no thread is blocked) and cancellable.
public final class PolygonRateLimiter: Sendable {
    /// Requests started per second (0 or less: unlimited).
    public let requestsPerSecond: Double
    /// Requests in flight at once.
    public let maxConcurrent: Int
    private let state = LockedBox(State())

    struct State {
        var inFlight = 0
        var maxInFlight = 0
        var granted = 0
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, Error>)] = []
        var nextID: UInt64 = 0
        var nextStart: ContinuousClock.Instant?
    }

    /// Creates a limiter.
    public init(requestsPerSecond: Double, maxConcurrent: Int) {
        self.requestsPerSecond = requestsPerSecond
        self.maxConcurrent = max(1, maxConcurrent)
    }

    /// Requests in flight now.
    public var inFlight: Int { state.withLock { $0.inFlight } }
    /// The most requests ever in flight at once.
    public var maxInFlightObserved: Int { state.withLock { $0.maxInFlight } }
    /// Requests waiting for a concurrency slot now.
    public var waiting: Int { state.withLock { $0.waiters.count } }
    /// Permits granted so far (requests started).
    public var permitsGranted: Int { state.withLock { $0.granted } }

    /// Waits for a concurrency slot and then for the next rate slot. Call `release()` once
    /// the request is done. Throws `CancellationError` if the task is cancelled while waiting.
    public func acquire() async throws {
        try await acquireSlot()
        let wait: Duration = state.withLock { s in
            guard requestsPerSecond > 0 else { return .zero }
            let now = ContinuousClock.now
            let start = max(now, s.nextStart ?? now)
            let interval = min(86_400, 1 / requestsPerSecond)  // at most a day, so the Duration never overflows
            s.nextStart = start + .nanoseconds(Int64(interval * 1_000_000_000))
            return start - now
        }
        if wait > .zero {
            do {
                try await Task.sleep(for: wait)
            } catch {
                release()
                throw error
            }
        }
    }

    /// Gives the concurrency slot back (to the longest waiter, if any).
    public func release() {
        let next: CheckedContinuation<Void, Error>? = state.withLock { s in
            if s.waiters.isEmpty {
                s.inFlight = max(0, s.inFlight - 1)
                return nil
            }
            s.granted += 1
            return s.waiters.removeFirst().continuation  // the slot passes on; inFlight unchanged
        }
        next?.resume()
    }

    private func acquireSlot() async throws {
        let granted: Bool = state.withLock { s in
            guard s.inFlight < maxConcurrent, s.waiters.isEmpty else { return false }
            s.inFlight += 1
            s.granted += 1
            s.maxInFlight = max(s.maxInFlight, s.inFlight)
            return true
        }
        if granted { return }
        let id: UInt64 = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                let immediate: Result<Void, Error>? = state.withLock { s in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if s.inFlight < maxConcurrent && s.waiters.isEmpty {
                        s.inFlight += 1
                        s.granted += 1
                        s.maxInFlight = max(s.maxInFlight, s.inFlight)
                        return .success(())
                    }
                    s.waiters.append((id, continuation))
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let waiter: CheckedContinuation<Void, Error>? = state.withLock { s in
                guard let index = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: index).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
