import Foundation
import JobQueue
import Logging
import PostgresClient
import TestSupport
import XCTest

/// Worker settings for tests: a 2-second lease and sub-second intervals.
func testConfiguration(_ id: String = "test-\(UUID().uuidString.prefix(6))") -> WorkerConfiguration {
    var c = WorkerConfiguration(workerID: id)
    c.concurrency = 8
    c.leaseSeconds = 2
    c.pollSeconds = 0.2
    c.rescueSeconds = 0.2
    c.graceSeconds = 2
    c.retryBaseSeconds = 0.05
    c.retryMaxSeconds = 0.2
    c.reconnectMinSeconds = 0.05
    c.reconnectMaxSeconds = 0.5
    c.exitWhenIdleSeconds = 0.6
    return c
}

let quietLogger: Logger = {
    var logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    logger.logLevel = .critical
    return logger
}()

/// Runs a worker until it is idle (exitWhenIdleSeconds), failing the test after `timeout`.
func runUntilIdle(_ worker: Worker, timeout: Double = 60) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await worker.run() }
        group.addTask {
            try await Task.sleep(nanoseconds: UInt64(timeout * 1_000_000_000))
            worker.requestStop()
            XCTFail("worker did not go idle within \(timeout) s")
        }
        try await group.next()
        group.cancelAll()
    }
}

extension PostgresConnection {
    func count(_ sql: String, _ params: [any PostgresBindable] = []) async throws -> Int {
        try await query(sql, params).first!.decode("n", as: Int.self)
    }
}

/// The result of the tests' stand-in tasks: `{}` unless a field is set.
struct TestResult: TaskResult {
    var completed: Bool?
    var skipped: Int?
    var text: String?
}
