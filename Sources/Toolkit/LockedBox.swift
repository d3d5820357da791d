import Synchronization

/// A value behind a lock: the one lock type of the project.
///
/// Built on `Synchronization.Mutex`, so the compiler checks it: the box is `Sendable` when its
/// value is (as `NIOLockedValueBox` and `Mutex` are), with no `@unchecked`. A class, unlike
/// `Mutex` itself, so several owners can share one box.
public final class LockedBox<Value> {
    private let mutex: Mutex<Value>

    /// Creates a box holding `value`.
    public init(_ value: sending Value) {
        mutex = Mutex(value)
    }

    /// Runs `body` with the value while holding the lock; `body` may change it.
    public func withLock<Result, E: Error>(_ body: (inout sending Value) throws(E) -> sending Result) throws(E) -> sending Result {
        try mutex.withLock(body)
    }
}

extension LockedBox: Sendable where Value: Sendable {}

extension LockedBox where Value: Sendable {
    /// A copy of the value, read under the lock.
    public var value: Value { withLock { $0 } }

    /// Replaces the value under the lock.
    public func set(_ newValue: Value) { withLock { $0 = newValue } }
}
