import Foundation
import LocalCluster
import TestSupport
import XCTest

/// The README's main command, end to end, as a user runs it.
final class DemoTests: XCTestCase {
    func testDemoRunsTheDailyCycleAndPrintsASummary() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-demo-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try ClosebellBinary.run(["demo", "--dir", dir.path, "--symbols", "8", "--stop-cluster"], environment: ["POLYGON_API_KEY": ""])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("Daily cycle run 1: SUCCEEDED"), result.output)
        for task in ["backup", "ohlc_daily", "volume_slots", "metadata_enrich", "earnings", "validate", "volume_stats", "retention",
                     "table_sizes", "completeness"] {
            let line = result.output.split(separator: "\n").first { $0.hasPrefix(task + " ") }
            XCTAssertTrue(line?.contains("succeeded") ?? false, "\(task): \(line ?? "missing")")
        }
        XCTAssertTrue(result.output.contains("8 ok, 0 failed"), result.output)
        XCTAssertTrue(result.output.contains("Earnings in the next 14 days (upcoming_earnings(14)): "), result.output)
        let backups = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("backups").path)
        XCTAssertEqual(backups.filter { $0.hasPrefix("closebell_demo_") && $0.hasSuffix(".sql.gz") }.count, 1, "\(backups)")
        // The demo's API key never reaches the workers' logs.
        let logs = dir.appendingPathComponent("logs")
        var completions = 0
        for file in try FileManager.default.contentsOfDirectory(atPath: logs.path) {
            let text = try String(contentsOfFile: logs.appendingPathComponent(file).path, encoding: .utf8)
            XCTAssertFalse(text.contains("demo-key-"), file)
            XCTAssertFalse(text.contains("server closed the connection"), file)
            completions += text.components(separatedBy: #""event":"task_completed""#).count - 1
        }
        XCTAssertEqual(completions, 10, "one task_completed line per task of the cycle")
    }

    func testDemoStopStopsTheClusterTheDemoLeftRunning() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-demo-stop-\(getpid())")
        let cluster = try LocalCluster(directory: dir.appendingPathComponent("cluster"))
        defer {
            cluster.destroy()
            try? FileManager.default.removeItem(at: dir)
        }
        let none = try ClosebellBinary.run(["demo", "stop", "--dir", dir.path])
        XCTAssertEqual(none.status, 0, none.output)
        XCTAssertTrue(none.output.contains("nothing to stop"), none.output)
        try cluster.start()
        XCTAssertTrue(cluster.isRunning)
        let stopped = try ClosebellBinary.run(["demo", "stop", "--dir", dir.path])
        XCTAssertEqual(stopped.status, 0, stopped.output)
        XCTAssertTrue(stopped.output.contains("stopped the demo cluster"), stopped.output)
        XCTAssertFalse(cluster.isRunning)
        let again = try ClosebellBinary.run(["demo", "stop", "--dir", dir.path])
        XCTAssertEqual(again.status, 0, again.output)
        XCTAssertTrue(again.output.contains("is not running"), again.output)
    }
}
