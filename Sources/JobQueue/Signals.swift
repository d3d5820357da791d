import Foundation

/// A wake-up signal for one waiting loop: `signal()` wakes the waiter, or the next `wait`
/// returns at once if nobody was waiting. Several signals before a wait collapse into one.
final class WakeSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var pending = false
    private var waiter: CheckedContinuation<Void, Never>?
    private var generation = 0

    /// Wakes the waiter (or the next one).
    func signal() {
        lock.lock()
        if let waiter {
            self.waiter = nil
            generation += 1
            lock.unlock()
            waiter.resume()
            return
        }
        pending = true
        lock.unlock()
    }

    /// Waits until signalled or `timeout` seconds have passed.
    func wait(timeout: Double) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock.lock()
            if pending {
                pending = false
                lock.unlock()
                continuation.resume()
                return
            }
            waiter = continuation
            generation += 1
            let myGeneration = generation
            lock.unlock()
            Task.detached { [self] in
                try? await Task.sleep(nanoseconds: UInt64(max(0, timeout) * 1_000_000_000))
                self.timeOut(generation: myGeneration)
            }
        }
    }

    private func timeOut(generation expected: Int) {
        lock.lock()
        guard generation == expected, let waiter else {
            lock.unlock()
            return
        }
        self.waiter = nil
        lock.unlock()
        waiter.resume()
    }
}
