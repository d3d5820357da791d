@testable import Closebell
import Foundation
import JobQueue
import XCTest
import Yams

/// Each module's settings type decodes its own section; the CLI only composes them. These read
/// real YAML text and environment variables through `ClosebellConfig`, as `closebell` does.
final class ConfigDecodingTests: XCTestCase {
    private func config(_ yaml: String, environment: [String: String] = [:]) throws -> ClosebellConfig {
        let root = try XCTUnwrap(try Yams.load(yaml: yaml) as? [String: Any])
        return try ClosebellConfig(ConfigSection(file: "test.yml", path: "", values: root), environment: environment)
    }

    private func refusal(_ yaml: String, environment: [String: String] = [:]) -> String {
        do {
            _ = try config(yaml, environment: environment)
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    func testWorkerSectionKeysAndDefaults() throws {
        let worker = try config("worker:\n  lease_seconds: 20\n  prune_after_days: 2\n  time_limits: {fills: 60, default: 900}\n").worker
        XCTAssertEqual(worker.leaseSeconds, 20)
        XCTAssertEqual(worker.pruneAfterSeconds, 2 * 86_400)
        XCTAssertEqual(worker.timeLimits, ["backup": 21_600, "fills": 60])
        XCTAssertEqual(worker.defaultTimeLimitSeconds, 900)
        XCTAssertEqual(worker.concurrency, WorkerConfiguration().concurrency, "absent keys keep their defaults")
    }

    func testRefusalsNameTheDottedKeyOrTheVariable() {
        XCTAssertEqual(refusal("worker:\n  lease_seconds: ten\n"), "config test.yml: worker.lease_seconds: expected a number, got ten")
        XCTAssertEqual(refusal("worker:\n  concurrency: 0\n"), "config test.yml: worker.concurrency: must be at least 1, got 0")
        XCTAssertEqual(refusal("worker:\n  time_limits: {fills: 0}\n"),
                       "config test.yml: worker.time_limits.fills: must be at least 0.001, got 0.0")
        XCTAssertEqual(refusal("worker:\n  lease_seconds: 4\n  heartbeat_seconds: 3\n"),
                       "config test.yml: worker.heartbeat_seconds: must be positive and less than half the lease (4.0 s)")
        XCTAssertEqual(refusal("worker:\n  leese_seconds: 4\n"),
                       "config test.yml: worker.leese_seconds: unknown key (misspelt? see the README's configuration table)")
        XCTAssertEqual(refusal("worker:\n  time_limits: 5\n"), "config test.yml: worker.time_limits: expected a mapping of keys")
        XCTAssertEqual(refusal("{}", environment: ["CLOSEBELL_WORKER_CONCURRENCY": "0"]),
                       "config environment: CLOSEBELL_WORKER_CONCURRENCY (worker.concurrency): must be at least 1, got 0")
    }
}
