import Dispatch
import Foundation

/// Runs blocking work (libpq, libcurl, `waitpid`) on OS threads of its own, never on Swift's
/// cooperative pool, and lets async callers await it: the one thread bridge of the project.
///
/// An executor owns up to `maxThreads` threads, started when work arrives and none is idle;
/// they share one queue and take work in submission order. With one thread (the default)
/// everything submitted runs in order on the same thread, as libpq's connection objects need.
/// `run` honours task cancellation: the caller's `onCancel` runs at once (to abort the work
/// in progress: `PQcancel`, a flag a libcurl callback reads, SIGTERM), and work that has not
/// started yet can be dropped.
public final class ThreadExecutor: Sendable {
    private struct Item: Sendable {
        let id: UInt64
        /// Does the work and returns what tells its caller, run once the thread counts as idle
        /// again (so a caller's next request finds this thread free, not a new one).
        let work: @Sendable () -> @Sendable () -> Void
        let dropped: @Sendable () -> Void
    }

    private struct State: Sendable {
        var queue: [Item] = []
        var nextID: UInt64 = 0
        var threads = 0
        var started = 0
        var idle = 0
        var stopping = false
    }

    private let name: String
    private let maxThreads: Int
    private let stackSize: Int
    private let state = LockedBox(State())
    /// One signal per queued item, plus one per thread at `stop`.
    private let wakeups = DispatchSemaphore(value: 0)

    /// Creates an executor whose threads are named `name`; no thread starts before work arrives.
    public init(name: String, maxThreads: Int = 1, stackSize: Int = 1 << 20) {
        self.name = name
        self.maxThreads = max(1, maxThreads)
        self.stackSize = stackSize
    }

    /// Queues `work` without waiting for it. Returns false (and runs nothing) after `stop`.
    @discardableResult
    public func submit(_ work: @escaping @Sendable () -> Void) -> Bool {
        enqueue({
            work()
            return {}
        }, dropped: {}) != nil
    }

    /// Runs `work` on one of the executor's threads and returns its result.
    ///
    /// When the calling task is cancelled, `onCancel` runs at once on the cancelling thread;
    /// with `dropIfNotStarted`, work still waiting in the queue is removed and
    /// `CancellationError` thrown. After `stop`, throws `CancellationError` without running.
    public func run<T: Sendable>(
        dropIfNotStarted: Bool = false,
        _ work: @escaping @Sendable () throws -> T,
        onCancel: @escaping @Sendable () -> Void = {}
    ) async throws -> T {
        // The queued item's id and whether the caller was cancelled: whichever of the two
        // (queueing, cancelling) comes second drops the item.
        let call = LockedBox<(id: UInt64?, cancelled: Bool)>((nil, false))
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
                let queued = enqueue({
                    let result = Result { try work() }
                    return { continuation.resume(with: result) }
                }, dropped: { continuation.resume(throwing: CancellationError()) })
                let cancelled = call.withLock { c -> Bool in
                    c.id = queued
                    return c.cancelled
                }
                if dropIfNotStarted, cancelled, let queued { drop(queued) }
            }
        } onCancel: {
            onCancel()
            let queued = call.withLock { c -> UInt64? in
                c.cancelled = true
                return c.id
            }
            if dropIfNotStarted, let queued { self.drop(queued) }
        }
    }

    /// Runs `work` on one of the executor's threads and blocks the calling thread until it is
    /// done: for callers on threads of their own (the HTTP server's handler threads), never on
    /// Swift's cooperative pool. After `stop`, throws `CancellationError` without running.
    public func runAndWait<T: Sendable>(_ work: @escaping @Sendable () throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let outcome = LockedBox<Result<T, any Error>>(.failure(CancellationError()))
        enqueue({
            outcome.set(Result { try work() })
            return { done.signal() }
        }, dropped: { done.signal() })
        done.wait()
        return try outcome.value.get()
    }

    /// Threads started so far (never more than `maxThreads` at once).
    public var threadsStarted: Int { state.withLock { $0.started } }

    /// Items waiting for a thread.
    public var queuedCount: Int { state.withLock { $0.queue.count } }

    /// Lets the threads finish what is queued, then exit. Later work is refused.
    public func stop() {
        let threads = state.withLock { s -> Int in
            s.stopping = true
            return s.threads
        }
        for _ in 0..<threads { wakeups.signal() }
    }

    /// Runs `work` on a new thread of its own that ends with it (a wait with no queue to share,
    /// such as `waitpid`). `onCancel` runs when the calling task is cancelled; the work always
    /// runs to its end.
    public static func runDetached<T: Sendable>(
        name: String, _ work: @escaping @Sendable () -> T, onCancel: @escaping @Sendable () -> Void = {}
    ) async -> T {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
                let thread = Thread { continuation.resume(returning: work()) }
                thread.name = name
                thread.start()
            }
        } onCancel: {
            onCancel()
        }
    }

    /// Queues an item; nil (after calling `dropped`) when the executor is stopping.
    @discardableResult
    private func enqueue(_ work: @escaping @Sendable () -> @Sendable () -> Void, dropped: @escaping @Sendable () -> Void) -> UInt64? {
        let (id, spawn) = state.withLock { s -> (UInt64?, Bool) in
            guard !s.stopping else { return (nil, false) }
            s.nextID += 1
            s.queue.append(Item(id: s.nextID, work: work, dropped: dropped))
            let spawn = s.queue.count > s.idle && s.threads < maxThreads
            if spawn {
                s.threads += 1
                s.started += 1
                s.idle += 1
            }
            return (s.nextID, spawn)
        }
        guard let id else {
            dropped()
            return nil
        }
        wakeups.signal()
        if spawn {
            let thread = Thread { [self] in loop() }
            thread.name = name
            thread.stackSize = stackSize
            thread.start()
        }
        return id
    }

    /// Removes a queued item and tells its caller; nothing when a thread has taken it.
    private func drop(_ id: UInt64) {
        let removed = state.withLock { s -> Item? in
            guard let index = s.queue.firstIndex(where: { $0.id == id }) else { return nil }
            return s.queue.remove(at: index)
        }
        removed?.dropped()
    }

    private func loop() {
        while true {
            wakeups.wait()
            let next = state.withLock { s -> Item?? in
                if !s.queue.isEmpty {
                    s.idle -= 1
                    return .some(s.queue.removeFirst())
                }
                if s.stopping {
                    s.threads -= 1
                    s.idle -= 1
                    return .none
                }
                return .some(nil)  // the signal of a dropped item
            }
            switch next {
            case .none: return
            case .some(nil): continue
            case .some(let item?):
                let tell = item.work()
                state.withLock { $0.idle += 1 }
                tell()
            }
        }
    }
}
