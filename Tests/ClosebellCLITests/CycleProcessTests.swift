import Foundation
import PostgresClient
import SampleMarket
import TestSupport
import XCTest

/// A cycle as operators run it: enqueued from the CLI (twice), drained by worker processes.
final class CycleProcessTests: XCTestCase {
    func testDailyCycleEnqueuedTwiceRunsOnceOnThreeWorkersBackupFirst() async throws {
        let db = try TestCluster.migratedDatabase()
        let data = SampleMarketData(symbols: 6)
        let server = try SamplePolygonServer.start(data: data, options: SampleServerOptions(apiKey: "cycle-test-key"))
        defer { server.stop() }
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.query("INSERT INTO ticker_universe (symbol) SELECT unnest($1::text[])", [data.symbols])
        let backups = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-cycle-\(getpid())")
        defer { try? FileManager.default.removeItem(at: backups) }
        let env = ["DATABASE_URL": db.url, "POLYGON_BASE_URL": server.baseURL.absoluteString,
                   "POLYGON_API_KEY": "cycle-test-key", "CLOSEBELL_BACKUP_DIR": backups.path]

        let first = try ClosebellBinary.run(["enqueue", "--cycle", "daily", "--force"], environment: env)
        XCTAssertEqual(first.status, 0, first.output)
        XCTAssertTrue(first.output.hasPrefix("enqueued daily cycle run"), first.output)
        let second = try ClosebellBinary.run(["enqueue", "--cycle", "daily", "--force"], environment: env)
        XCTAssertEqual(second.status, 0, second.output)
        XCTAssertTrue(second.output.contains("already exists"), second.output)

        let log = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-cycle-\(getpid()).log").path
        defer { unlink(log) }
        let workers = try (0..<3).map { _ in
            try ClosebellBinary.start(["worker", "--lease", "2", "--poll", "0.5", "--rescue-interval", "0.5", "--log-format", "json"],
                                      environment: env, logFile: log)
        }
        defer { for w in workers { w.signal(SIGKILL); w.wait() } }
        let finished = try await eventually(timeout: 120) {
            try await conn.query("SELECT state FROM maintenance_cycle_runs").first?["state"] != "running"
        }
        XCTAssertTrue(finished)
        for w in workers { w.signal(SIGTERM) }
        for w in workers { XCTAssertEqual(w.wait(seconds: 20), 0) }

        let runs = try await conn.query("SELECT id, state, outcome::text AS outcome FROM maintenance_cycle_runs")
        XCTAssertEqual(runs.count, 1, "enqueued twice, run once")
        let run = try XCTUnwrap(runs.first)
        XCTAssertEqual(run["state"], "succeeded", run["outcome"] ?? "")
        let outcome = try XCTUnwrap(Output.parse(run["outcome"]) as? [String: Any])
        let tasks = (outcome["tasks"] as? [[String: Any]] ?? []).compactMap { $0["task"] as? String }
        XCTAssertEqual(Set(tasks), ["backup", "ohlc_daily", "volume_slots", "metadata_enrich", "earnings", "validate", "volume_stats",
                                    "retention", "table_sizes", "completeness"])
        // Backup first: it finished before any other task of the run started.
        let order = try await conn.query("""
            SELECT (SELECT finished_at FROM maintenance_jobs WHERE task = 'backup')
                   <= (SELECT min(started_at) FROM maintenance_jobs WHERE task <> 'backup') AS backup_first,
                   (SELECT max(finished_at) FROM maintenance_jobs WHERE task IN ('ohlc_daily', 'volume_slots', 'earnings'))
                   <= (SELECT started_at FROM maintenance_jobs WHERE task = 'validate')
                   AND (SELECT finished_at FROM maintenance_jobs WHERE task = 'validate')
                   <= (SELECT min(started_at) FROM maintenance_jobs
                        WHERE task IN ('metadata_enrich', 'volume_stats', 'retention', 'completeness')) AS loads_before_stats,
                   (SELECT max(finished_at) FROM maintenance_jobs WHERE task <> 'table_sizes')
                   <= (SELECT started_at FROM maintenance_jobs WHERE task = 'table_sizes') AS sizes_last
            """).first!
        XCTAssertEqual(order["backup_first"], "t")
        XCTAssertEqual(order["loads_before_stats"], "t")
        XCTAssertEqual(order["sizes_last"], "t")
        let rows = try await conn.query("SELECT count(*) AS n FROM market_data_daily").first?.decode("n", as: Int.self)
        XCTAssertGreaterThan(rows ?? 0, 0)
        // Exactly one worker (the one whose completion ended the run) logs its end.
        let finishedLines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
            .filter { $0.contains(#""event":"maintenance_cycle_finished""#) }
        XCTAssertEqual(finishedLines.count, 1)
        let line = try XCTUnwrap(finishedLines.first)
        let fields = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(fields["success"] as? String, "true")
        XCTAssertEqual((fields["total"] as? NSNumber)?.intValue, tasks.count, "counts are JSON numbers")
        XCTAssertEqual((fields["completed"] as? NSNumber)?.intValue, tasks.count)
        XCTAssertEqual((fields["failed"] as? NSNumber)?.intValue, 0)
        XCTAssertEqual(fields["cycle"] as? String, "daily")
        XCTAssertNotNil(fields["duration_s"] as? NSNumber)
    }
}

enum Output {
    static func parse(_ text: String?) -> Any? {
        guard let text else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(text.utf8))
    }
}

/// `closebell worker --schedule` enqueues due cycles by itself.
final class ScheduleProcessTests: XCTestCase {
    func testWorkerWithScheduleEnqueuesTheMonthlyRunOnce() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        // The monthly cycle is due from 04:00 New York on the 1st; only that first hour of a month is not covered.
        let due: Bool = try await conn.query(
            "SELECT EXISTS (SELECT 1 FROM maintenance_cycles_due(now()) WHERE cycle = 'monthly') AS due").first!.decode("due")
        try XCTSkipUnless(due, "the monthly cycle is not due yet this month (before 04:00 New York on the 1st)")
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-schedule-\(getpid()).yaml").path
        try "schedule:\n  interval_seconds: 1\n".write(toFile: config, atomically: true, encoding: .utf8)
        let backups = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-schedule-backups-\(getpid())")
        defer {
            unlink(config)
            try? FileManager.default.removeItem(at: backups)
        }
        let env = ["DATABASE_URL": db.url, "CLOSEBELL_BACKUP_DIR": backups.path]
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-schedule-\(getpid()).log").path
        defer { unlink(log) }
        // Two schedulers at once: each period's run is still created once.
        let workers = try (0..<2).map { _ in
            try ClosebellBinary.start(["worker", "--schedule", "--config", config, "--log-format", "json"], environment: env, logFile: log)
        }
        defer { for w in workers { w.signal(SIGKILL); w.wait() } }
        let enqueued = try await eventually(timeout: 30) {
            try await conn.query("SELECT count(*) AS n FROM maintenance_cycle_runs WHERE cycle = 'monthly'").first?["n"] == "1"
        }
        XCTAssertTrue(enqueued, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
        try await Task.sleep(nanoseconds: 2_500_000_000)
        for w in workers { w.signal(SIGTERM) }
        for w in workers { XCTAssertEqual(w.wait(seconds: 60), 0) }
        let runs = try await conn.query("SELECT cycle, count(*) AS n FROM maintenance_cycle_runs GROUP BY cycle")
        for row in runs { XCTAssertEqual(row["n"], "1", "one run of \(row["cycle"] ?? "?") per period") }
        let text = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertTrue(text.contains(#""event":"cycle_enqueued""#), text)
    }
}
