@testable import Closebell
import ArgumentParser
import JobQueue
import XCTest

/// Worker flags are named after their `worker:` keys; the old spellings still work, hidden.
final class WorkerFlagTests: XCTestCase {
    private let values = ["7", "2", "0.5", "0.25", "12", "3", "0.1", "60", "9", "4"]

    private func configuration(_ names: [String]) throws -> WorkerConfiguration {
        let arguments = zip(names, values).flatMap { ["--\($0)", $1] }
        return try WorkerOptions.parse(arguments).workerConfiguration(base: WorkerConfiguration())
    }

    func testNewAndOldSpellingsSetTheSameSettings() throws {
        let new = try configuration(["lease-seconds", "heartbeat-seconds", "poll-seconds", "rescue-interval-seconds", "grace-seconds",
                                     "stop-wait-seconds", "retry-base-seconds", "retry-max-seconds", "prune-after-days", "claim-batch-size"])
        let old = try configuration(["lease", "heartbeat", "poll", "rescue-interval", "grace",
                                     "stop-wait", "retry-base", "retry-max", "prune-after", "claim-batch"])
        for c in [new, old] {
            XCTAssertEqual(c.leaseSeconds, 7)
            XCTAssertEqual(c.heartbeatSeconds, 2)
            XCTAssertEqual(c.pollSeconds, 0.5)
            XCTAssertEqual(c.rescueSeconds, 0.25)
            XCTAssertEqual(c.graceSeconds, 12)
            XCTAssertEqual(c.stopWaitSeconds, 3)
            XCTAssertEqual(c.retryBaseSeconds, 0.1)
            XCTAssertEqual(c.retryMaxSeconds, 60)
            XCTAssertEqual(c.pruneAfterSeconds, 9 * 86_400)
            XCTAssertEqual(c.claimBatchSize, 4)
        }
    }

    func testHelpShowsOnlyTheNewSpellings() {
        let help = WorkerOptions.helpMessage()
        XCTAssertTrue(help.contains("--lease-seconds"), help)
        XCTAssertTrue(help.contains("--prune-after-days"), help)
        XCTAssertFalse(help.contains("--lease "), help)
        XCTAssertFalse(help.contains("--lease <"), help)
        XCTAssertFalse(help.contains("--claim-batch <"), help)
    }

    func testBothSpellingsOfOneFlagAreRefused() {
        XCTAssertThrowsError(try WorkerOptions.parse(["--lease-seconds", "5", "--lease", "6"])) { error in
            XCTAssertTrue(WorkerOptions.message(for: error).contains("--lease-seconds and --lease"), WorkerOptions.message(for: error))
        }
    }
}
