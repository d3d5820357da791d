import Foundation
import Toolkit
import XCTest

final class LockedBoxTests: XCTestCase {
    func testConcurrentIncrementsAreAllCounted() async {
        let box = LockedBox(0)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask { for _ in 0..<1000 { box.withLock { $0 += 1 } } }
            }
        }
        XCTAssertEqual(box.value, 8000)
    }

    func testWithLockReturnsAndRethrows() {
        struct Refused: Error {}
        let box = LockedBox([1, 2])
        XCTAssertEqual(box.withLock { values -> Int in
            values.append(3)
            return values.count
        }, 3)
        XCTAssertThrowsError(try box.withLock { _ in throw Refused() })
        box.set([])
        XCTAssertEqual(box.value, [])
    }
}

final class ThreadExecutorTests: XCTestCase {
    func testWorkRunsInOrderOnOneThread() async throws {
        let executor = ThreadExecutor(name: "toolkit-test")
        defer { executor.stop() }
        let seen = LockedBox<[Int]>([])
        let threads = LockedBox<Set<pthread_t>>([])
        for i in 0..<20 {
            executor.submit {
                threads.withLock { _ = $0.insert(pthread_self()) }
                seen.withLock { $0.append(i) }
            }
        }
        let answer = try await executor.run { () -> Int in
            threads.withLock { _ = $0.insert(pthread_self()) }
            return 6 * 7
        }
        XCTAssertEqual(answer, 42)
        XCTAssertEqual(seen.value, Array(0..<20))
        XCTAssertEqual(threads.value.count, 1)
        XCTAssertEqual(executor.threadsStarted, 1)
    }

    func testPoolStartsNoMoreThreadsThanItsLimit() async throws {
        let executor = ThreadExecutor(name: "toolkit-pool", maxThreads: 3)
        defer { executor.stop() }
        try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<50 { group.addTask { try await executor.run { i } } }
            var sum = 0
            for try await value in group { sum += value }
            XCTAssertEqual(sum, (0..<50).reduce(0, +))
        }
        XCTAssertLessThanOrEqual(executor.threadsStarted, 3)
    }

    func testErrorsReachTheCaller() async {
        struct Failed: Error {}
        let executor = ThreadExecutor(name: "toolkit-test")
        defer { executor.stop() }
        do {
            _ = try await executor.run { () throws -> Int in throw Failed() }
            XCTFail("expected an error")
        } catch {
            XCTAssertTrue(error is Failed)
        }
    }

    /// Cancelling the caller runs `onCancel`, which stops the blocking work in progress.
    func testCancellationReachesRunningWork() async throws {
        let executor = ThreadExecutor(name: "toolkit-test")
        defer { executor.stop() }
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let task = Task {
            try await executor.run({ () -> String in
                started.signal()
                release.wait()  // blocks like libpq or waitpid until onCancel ends it
                return "stopped by onCancel"
            }, onCancel: { release.signal() })
        }
        await Task.detached { started.wait() }.value
        task.cancel()
        let outcome = try await task.value
        XCTAssertEqual(outcome, "stopped by onCancel")
    }

    /// Work still queued behind a busy thread is dropped when its caller is cancelled.
    func testCancelledQueuedWorkIsDropped() async throws {
        let executor = ThreadExecutor(name: "toolkit-test")
        defer { executor.stop() }
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let ran = LockedBox(false)
        executor.submit {
            started.signal()
            release.wait()
        }
        await Task.detached { started.wait() }.value
        let queued = Task { try await executor.run(dropIfNotStarted: true) { ran.set(true) } }
        // The queued call is cancelled while the only thread is still busy.
        while !(await Self.isQueued(executor)) { await Task.yield() }
        queued.cancel()
        do {
            try await queued.value
            XCTFail("expected CancellationError")
        } catch {
            XCTAssertTrue(error is CancellationError)
        }
        release.signal()
        try await executor.run {}
        XCTAssertFalse(ran.value)
    }

    func testStoppedExecutorRefusesWork() async {
        let executor = ThreadExecutor(name: "toolkit-test")
        executor.stop()
        XCTAssertFalse(executor.submit {})
        do {
            try await executor.run {}
            XCTFail("expected CancellationError")
        } catch {
            XCTAssertTrue(error is CancellationError)
        }
    }

    func testDetachedWorkRunsToItsEndAfterCancellation() async {
        let release = DispatchSemaphore(value: 0)
        let cancelled = LockedBox(false)
        let task = Task {
            await ThreadExecutor.runDetached(name: "toolkit-wait", {
                release.wait()
                return cancelled.value
            }, onCancel: {
                cancelled.set(true)
                release.signal()
            })
        }
        task.cancel()
        let sawCancel = await task.value
        XCTAssertTrue(sawCancel)
    }

    private static func isQueued(_ executor: ThreadExecutor) async -> Bool {
        executor.queuedCount > 0
    }
}

final class CivilDateTests: XCTestCase {
    func testRoundTripsAndArithmetic() throws {
        let date = try XCTUnwrap(CivilDate("2024-02-29"))
        XCTAssertEqual(date.description, "2024-02-29")
        XCTAssertEqual(CivilDate(dayNumber: date.dayNumber), date)
        XCTAssertEqual(date.adding(days: 1).description, "2024-03-01")
        XCTAssertEqual(CivilDate(dayNumber: 0).description, "1970-01-01")
        XCTAssertEqual(CivilDate(dayNumber: 0).isoWeekday, 4)
        XCTAssertNil(CivilDate("2023-02-29"))
        XCTAssertNil(CivilDate("2024-2-01"))
        XCTAssertEqual(CivilDate.range(from: date, through: date.adding(days: 2)).count, 3)
        XCTAssertEqual(try JSONDecoder().decode([CivilDate].self, from: Data(#"["2024-02-29"]"#.utf8)), [date])
    }
}

final class RedactorTests: XCTestCase {
    func testSecretsAndCredentialsAreReplaced() {
        let text = "postgresql://u:pw@h/db password='a b' apiKey=K1&x=1 Bearer abc secret: s3cr3t hunter2"
        let scrubbed = Redactor.scrub(text, secrets: ["hunter2"])
        for secret in ["pw@", "a b", "K1", "abc", "s3cr3t", "hunter2"] {
            XCTAssertFalse(scrubbed.contains(secret), "\(secret) in \(scrubbed)")
        }
        XCTAssertTrue(scrubbed.contains("postgresql://u:\(Redactor.placeholder)@h/db"), scrubbed)
        XCTAssertTrue(scrubbed.contains("&x=1"), scrubbed)
        XCTAssertEqual(Redactor.url(URL(string: "https://u:p@api.example:8443/v2/x?apiKey=K#f")!), "https://api.example:8443/v2/x")
        XCTAssertEqual(Redactor.withoutQuery("https://h/p?apiKey=K"), "https://h/p")
        XCTAssertEqual(Redactor.summary(String(repeating: "x", count: 400), limit: 10), "xxxxxxxxxx…")
    }
}
