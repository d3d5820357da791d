import ChildProcess
import Foundation
import JobQueue
import PostgresClient
import TestSupport
import XCTest

/// Guarantees about processes, tested with real `closebell worker` processes.
final class WorkerProcessTests: XCTestCase {
    private let fastFlags = ["--lease", "2", "--poll", "0.5", "--rescue-interval", "0.5", "--grace", "5",
                             "--retry-base", "0.1", "--log-format", "json"]

    private func logFile(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("closebell-\(name)-\(UUID().uuidString.prefix(8)).log").path
    }

    func testFourWorkersDrainTwentyThousandJobsWhileOneIsKilled() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("INSERT INTO maintenance_jobs (task) SELECT 'noop' FROM generate_series(1, 20000)")
        let env = ["DATABASE_URL": db.url]
        var workers = try (0..<4).map { i in
            try ClosebellBinary.start(["worker", "--concurrency", "8"] + fastFlags, environment: env, logFile: logFile("w\(i)"))
        }
        defer { for w in workers { w.signal(SIGKILL); w.wait() } }
        let started = try await eventually(timeout: 60) {
            try await conn.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'succeeded'") >= 3000
        }
        XCTAssertTrue(started)
        let victim = workers[0]
        victim.signal(SIGKILL)
        XCTAssertEqual(victim.wait(), 128 + SIGKILL)
        workers[0] = try ClosebellBinary.start(["worker", "--concurrency", "8"] + fastFlags, environment: env, logFile: logFile("w0b"))
        let drained = try await eventually(timeout: 120) {
            try await conn.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'succeeded'") == 20000
        }
        XCTAssertTrue(drained)
        let summary = try await conn.query("""
            SELECT count(*) AS total,
                   count(*) FILTER (WHERE state <> 'succeeded') AS not_succeeded,
                   count(*) FILTER (WHERE attempts > 1) AS rerun,
                   count(*) FILTER (WHERE attempts > 1 AND errors -> 0 ->> 'type' = 'LeaseExpired'
                                    AND errors -> 0 ->> 'error' LIKE '%:' || $1::text || ':%') AS rerun_after_kill
            FROM maintenance_jobs
            """, [Int(victim.pid)]).first!
        XCTAssertEqual(summary["total"], "20000", "none lost")
        XCTAssertEqual(summary["not_succeeded"], "0")
        // Only the jobs the killed worker held ran again, each because its lease lapsed.
        XCTAssertEqual(summary["rerun"], summary["rerun_after_kill"])
        XCTAssertLessThanOrEqual(Int(summary["rerun"]!)!, 8 + 64)
        for w in workers { w.signal(SIGTERM) }
        for w in workers { XCTAssertEqual(w.wait(seconds: 15), 0, "SIGTERM drains and exits 0") }
    }

    func testSigtermDrainsARunningJobAndExitsZero() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute(#"INSERT INTO maintenance_jobs (task, args) VALUES ('noop', '{"sleep_ms": 1500}')"#)
        let log = logFile("term")
        let worker = try ClosebellBinary.start(["worker"] + fastFlags, environment: ["DATABASE_URL": db.url], logFile: log)
        let running = try await eventually { try await conn.count("SELECT count(*) AS n FROM maintenance_jobs WHERE state = 'running'") == 1 }
        XCTAssertTrue(running)
        worker.signal(SIGTERM)
        XCTAssertEqual(worker.wait(seconds: 20), 0)
        let state = try await conn.query("SELECT state FROM maintenance_jobs").first?["state"]
        XCTAssertEqual(state, "succeeded", "the running job finished within the grace period")
        let output = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertTrue(output.contains(#""event":"worker_stopping""#), output)
        XCTAssertTrue(output.contains(#""event":"task_completed""#))
        // Every line is a JSON object starting with ts, level and msg; numbers are numbers.
        for line in output.split(separator: "\n") {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
            XCTAssertTrue(line.hasPrefix(#"{"ts":""#) && line.contains(#"","level":""#), String(line))
            XCTAssertNotNil(object["msg"] as? String, String(line))
        }
        // Structured lines carry the job's identity.
        let line = try XCTUnwrap(output.split(separator: "\n").first { $0.contains("task_completed") })
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(object["task"] as? String, "noop")
        XCTAssertEqual((object["attempt"] as? NSNumber)?.intValue, 1)
        XCTAssertNotNil(object["job_id"] as? NSNumber)
        let duration = try XCTUnwrap(object["duration_s"] as? NSNumber, "duration_s is a number: \(line)")
        XCTAssertGreaterThan(duration.doubleValue, 1.0, "the job slept 1.5 s")
    }

    func testPsqlInsertOfAMisspelledTaskIsRefused() throws {
        let db = try TestCluster.migratedDatabase()
        let cluster = try TestCluster.shared()
        let log = logFile("psql")
        let psql = try ChildProcess.spawn(cluster.programPath("psql"), ["-X", "-v", "ON_ERROR_STOP=1", "-d", db.url, "-c",
                                                                        "INSERT INTO maintenance_jobs (task) VALUES ('ohlc_dialy')"], outputPath: log)
        XCTAssertNotEqual(psql.wait(), 0)
        let output = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertTrue(output.contains(#"ERROR:  unknown task "ohlc_dialy""#), output)
        XCTAssertTrue(output.contains("HINT:  known tasks: backfill, backup, completeness, compress, earnings, metadata_enrich, noop, ohlc_daily"), output)
    }

    func testEnqueueCommandAndJobsCommands() async throws {
        let db = try TestCluster.migratedDatabase()
        let env = ["DATABASE_URL": db.url]
        let ok = try ClosebellBinary.run(["enqueue", "noop", "--args", #"{"sleep_ms": 1}"#, "--json"], environment: env)
        XCTAssertEqual(ok.status, 0, ok.output)
        let object = try JSONSerialization.jsonObject(with: Data(ok.output.utf8)) as? [String: Any]
        XCTAssertEqual(object?["enqueued"] as? Bool, true)
        let id = try XCTUnwrap(object?["id"] as? Int)

        let refused = try ClosebellBinary.run(["enqueue", "vacum"], environment: env)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.output.contains("unknown task \"vacum\""), refused.output)
        XCTAssertTrue(refused.output.contains("known tasks:"), refused.output)

        let badJSON = try ClosebellBinary.run(["enqueue", "noop", "--args", "{days: 3}"], environment: env)
        XCTAssertEqual(badJSON.status, 64, badJSON.output)

        let cancel = try ClosebellBinary.run(["jobs", "cancel", String(id)], environment: env)
        XCTAssertEqual(cancel.status, 0, cancel.output)
        let again = try ClosebellBinary.run(["jobs", "cancel", String(id)], environment: env)
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.output.contains("is cancelled"), again.output)
        let retry = try ClosebellBinary.run(["jobs", "retry", String(id)], environment: env)
        XCTAssertEqual(retry.status, 0, retry.output)
        let show = try ClosebellBinary.run(["jobs", "show", String(id), "--json"], environment: env)
        let job = try JSONSerialization.jsonObject(with: Data(show.output.utf8)) as? [String: Any]
        XCTAssertEqual(job?["state"] as? String, "available")
        let status = try ClosebellBinary.run(["status", "--json"], environment: env)
        XCTAssertEqual(status.status, 0, status.output)
        let report = try JSONSerialization.jsonObject(with: Data(status.output.utf8)) as? [String: Any]
        let depth = report?["depth"] as? [[String: Any]]
        XCTAssertEqual(depth?.first?["state"] as? String, "available")
        XCTAssertEqual(depth?.first?["count"] as? Int, 1)
    }

    func testBadConfigValueIsRefusedAtStartWithItsKey() throws {
        let db = try TestCluster.migratedDatabase()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).yaml").path
        try "worker:\n  lease_seconds: ten\n".write(toFile: path, atomically: true, encoding: .utf8)
        let result = try ClosebellBinary.run(["worker", "--config", path], environment: ["DATABASE_URL": db.url])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.output.contains("worker.lease_seconds: expected a number, got ten"), result.output)
        try "worker:\n  leese_seconds: 10\n".write(toFile: path, atomically: true, encoding: .utf8)
        let typo = try ClosebellBinary.run(["worker", "--config", path], environment: ["DATABASE_URL": db.url])
        XCTAssertTrue(typo.output.contains("worker.leese_seconds: unknown key"), typo.output)
        try "backup:\n  pg_dump: /nonexistent/pg_dump\n".write(toFile: path, atomically: true, encoding: .utf8)
        let program = try ClosebellBinary.run(["worker", "--config", path], environment: ["DATABASE_URL": db.url])
        XCTAssertTrue(program.output.contains("backup.pg_dump: no executable program /nonexistent/pg_dump"), program.output)
        try "backup:\n  compressor: xz\n".write(toFile: path, atomically: true, encoding: .utf8)
        let xz = try ClosebellBinary.run(["backup", "list", "--config", path], environment: ["DATABASE_URL": db.url])
        XCTAssertNotEqual(xz.status, 0)
        XCTAssertTrue(xz.output.contains("backup.compressor:"), xz.output)
        // A bare `off` is YAML false: accepted as "no deadline".
        try "alerts:\n  daily_deadline: off\nworker:\n  lease_seconds: 1\n".write(toFile: path, atomically: true, encoding: .utf8)
        let off = try ClosebellBinary.run(["worker", "--config", path, "--exit-when-idle", "0.5"], environment: ["DATABASE_URL": db.url])
        XCTAssertEqual(off.status, 0, off.output)
        let usage = try ClosebellBinary.run(["worker", "--log-format", "xml"], environment: ["DATABASE_URL": db.url])
        XCTAssertEqual(usage.status, 64, usage.output)
    }
}
