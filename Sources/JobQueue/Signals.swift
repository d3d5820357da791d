import Foundation

/// A wake-up signal for one waiting loop: `signal()` wakes the waiter, or the next `wait`
/// returns at once if nobody was waiting. Several signals before a wait collapse into one.
final class WakeSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var pending = false
    private var waiter: CheckedContinuation<Void, Never>?

    /// Wakes the waiter (or the next one).
    func signal() {
        lock.lock()
        if let waiter {
            self.waiter = nil
            lock.unlock()
            waiter.resume()
            return
        }
        pending = true
        lock.unlock()
    }

    /// Waits until signalled or `timeout` seconds have passed. The timer is cancelled as soon
    /// as the signal arrives, so frequent waits leave no sleeping tasks behind.
    func wait(timeout: Double) async {
        if lock.withLock({ () -> Bool in
            defer { pending = false }
            return pending
        }) { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(nanoseconds: UInt64(max(0, timeout) * 1_000_000_000))
                self.signal()
            }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                lock.lock()
                if pending {
                    pending = false
                    lock.unlock()
                    continuation.resume()
                    return
                }
                waiter = continuation
                lock.unlock()
            }
            // A timer that fires after a real signal leaves `pending` set, so the next wait
            // may return early: harmless, since every caller re-checks its own condition.
            group.cancelAll()
        }
    }
}
