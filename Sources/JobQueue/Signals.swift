import Foundation

/// A wake-up signal for one waiting loop: `signal()` wakes the waiter, or the next `wait`
/// returns at once if nobody was waiting. Several signals before a wait collapse into one.
final class WakeSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var pending = false
    /// Set when the current wait's timer ran out (or was cancelled) before the waiter parked.
    private var expired = false
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
            expired = false
            return pending
        }) { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // Also ends the wait when the waiting task is cancelled (the sleep throws).
                try? await Task.sleep(nanoseconds: UInt64(max(0, timeout) * 1_000_000_000))
                self.expire()
            }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                lock.lock()
                if pending || expired {
                    pending = false
                    lock.unlock()
                    continuation.resume()
                    return
                }
                waiter = continuation
                lock.unlock()
            }
            group.cancelAll()
        }
    }

    /// The timer's end: wakes this wait only. Unlike `signal()` it never leaves a signal
    /// pending, so a wait woken by a real signal does not make the next wait return at once.
    private func expire() {
        lock.lock()
        if let waiter {
            self.waiter = nil
            lock.unlock()
            waiter.resume()
            return
        }
        expired = true
        lock.unlock()
    }
}
