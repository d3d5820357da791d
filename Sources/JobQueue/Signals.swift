import Foundation
import Toolkit

/// A wake-up signal for one waiting loop: `signal()` wakes the waiter, or the next `wait`
/// returns at once if nobody was waiting. Several signals before a wait collapse into one.
final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        /// Set when the current wait's timer ran out (or was cancelled) before the waiter parked.
        var expired = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = LockedBox(State())

    /// Wakes the waiter (or the next one).
    func signal() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let waiter = s.waiter {
                s.waiter = nil
                return waiter
            }
            s.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Waits until signalled or `timeout` seconds have passed. The timer is cancelled as soon
    /// as the signal arrives, so frequent waits leave no sleeping tasks behind.
    func wait(timeout: Double) async {
        if state.withLock({ s -> Bool in
            defer { s.pending = false }
            s.expired = false
            return s.pending
        }) { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // Also ends the wait when the waiting task is cancelled (the sleep throws).
                try? await Task.sleep(nanoseconds: UInt64(max(0, timeout) * 1_000_000_000))
                self.expire()
            }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let parked = state.withLock { s -> Bool in
                    if s.pending || s.expired {
                        s.pending = false
                        return false
                    }
                    s.waiter = continuation
                    return true
                }
                if !parked { continuation.resume() }
            }
            group.cancelAll()
        }
    }

    /// The timer's end: wakes this wait only. Unlike `signal()` it never leaves a signal
    /// pending, so a wait woken by a real signal does not make the next wait return at once.
    private func expire() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let waiter = s.waiter {
                s.waiter = nil
                return waiter
            }
            s.expired = true
            return nil
        }
        waiter?.resume()
    }
}
