import ChildProcess
import Foundation
import HTTPClient
import LocalCluster
import PostgresClient
import TestSupport
import XCTest

/// The dashboard of a real run, rendered by headless Chromium from Debian's packages.
final class DashboardTests: XCTestCase {
    /// Renders `url` in headless Chromium (its scripts run for a few seconds of virtual time)
    /// and returns the DOM.
    static func chromiumDOM(_ url: String, profile: URL) async throws -> String {
        let arguments = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--user-data-dir=\(profile.path)",
            "--virtual-time-budget=4000", "--dump-dom", url,
        ]
        let result = try await ChildProcess.run("chromium", arguments)
        XCTAssertEqual(result.status, 0, result.output)
        return result.output
    }

    /// `closebell demo` runs the daily cycle; a worker serves the dashboard of that database.
    /// Chromium's DOM shows the cycle run with its seven tasks and the queue counts, and the
    /// page's script has refreshed it. Retry and cancel work with the token and are refused
    /// without it, and the page offers them on the right jobs.
    func testDashboardOfADemoRunInChromium() async throws {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
        XCTAssertNotNil(chromium, "chromium is not installed: run scripts/setup")
        guard chromium != nil else { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-dashboard-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let demo = try ClosebellBinary.run(["demo", "--dir", dir.path, "--symbols", "6"], environment: ["POLYGON_API_KEY": ""])
        XCTAssertEqual(demo.status, 0, demo.output)
        defer { try? LocalCluster(directory: dir.appendingPathComponent("cluster")).stop() }
        let url = try XCTUnwrap(demo.output.components(separatedBy: "psql '").dropFirst().first?.components(separatedBy: "'").first, demo.output)

        let conn = try await PostgresConnection.connect(url)
        defer { Task { await conn.close() } }
        // Work for the page: a job that fails for good, and one waiting for tomorrow.
        let failing: Int64 = try await conn.query(
            "INSERT INTO maintenance_jobs (task, args, max_attempts) VALUES ('noop', '{\"fail_times\": 5}', 1) RETURNING id").first!.decode("id")
        let waiting: Int64 = try await conn.query(
            "INSERT INTO maintenance_jobs (task, run_at) VALUES ('vacuum', now() + interval '1 day') RETURNING id").first!.decode("id")

        let port = try LocalCluster.freePort()
        let token = "dashboard-token-0123456789"
        let config = dir.appendingPathComponent("closebell.yml")
        try "http:\n  cache_seconds: 0.5\n  dashboard_refresh_seconds: 1\n".write(to: config, atomically: true, encoding: .utf8)
        let log = dir.appendingPathComponent("worker-http.log").path
        let worker = try ClosebellBinary.start(
            ["worker", "--config", config.path, "--http", "127.0.0.1:\(port)", "--log-format", "json"],
            environment: ["DATABASE_URL": url, "CLOSEBELL_TRIGGER_TOKEN": token, "CLOSEBELL_BACKUP_DIR": dir.appendingPathComponent("backups").path],
            logFile: log)
        defer { worker.signal(SIGKILL); worker.wait() }
        let base = "http://127.0.0.1:\(port)"
        let client = HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: 2, timeout: 10))
        let failed = try await eventually(timeout: 30) {
            try await conn.query("SELECT state FROM maintenance_jobs WHERE id = $1", [failing]).first?["state"] == "failed"
        }
        XCTAssertTrue(failed, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")

        let profile = dir.appendingPathComponent("chromium-profile")
        let dom = try await Self.chromiumDOM(base + "/", profile: profile)
        XCTAssertTrue(dom.contains("<main id=\"main\" data-refreshed="), "the page's script refreshed it: \(dom.prefix(2000))")
        let run = try XCTUnwrap(dom.range(of: "data-run=\"1\" data-cycle=\"daily\" data-state=\"succeeded\""), dom)
        let runHTML = String(dom[run.lowerBound...]).components(separatedBy: "</article>")[0]
        // Every task of the daily cycle (the seven, and those added since) is on the page.
        let tasks = try await conn.query("SELECT task FROM maintenance_jobs WHERE run_id = 1 ORDER BY id").map { try $0.decode("task", as: String.self) }
        XCTAssertTrue(Set(["backup", "ohlc_daily", "volume_slots", "metadata_enrich", "volume_stats", "retention", "table_sizes"]).isSubset(of: Set(tasks)), "\(tasks)")
        for task in tasks {
            XCTAssertTrue(runHTML.contains("<tr class=\"task\" data-task=\"\(task)\""), "\(task) missing from the run")
        }
        XCTAssertEqual(runHTML.components(separatedBy: "<tr class=\"task\"").count - 1, tasks.count, "one row per task")
        XCTAssertEqual(runHTML.components(separatedBy: "succeeded</span>").count - 1, tasks.count + 1, "the run and all its tasks succeeded")
        // Queue counts: the cycle's jobs succeeded, one failed, one waiting.
        XCTAssertTrue(dom.contains("data-state=\"succeeded\"><b class=\"count\">\(tasks.count)</b>"), dom)
        XCTAssertTrue(dom.contains("data-state=\"failed\"><b class=\"count\">1</b>"))
        XCTAssertTrue(dom.contains("data-state=\"available\"><b class=\"count\">1</b>"))
        XCTAssertTrue(dom.contains("data-action=\"retry\" data-job=\"\(failing)\""), "the failed job offers retry")
        XCTAssertTrue(dom.contains("data-action=\"cancel\" data-job=\"\(waiting)\""), "the waiting job offers cancel")
        XCTAssertTrue(dom.contains("id=\"backup-count\">1<"), "one backup file")
        XCTAssertTrue(dom.contains("data-table=\"market_data_daily\""), "table sizes")

        // The actions behind the token: refused without it, done with it.
        func post(_ path: String, token: String?) async throws -> Int {
            try await client.send(HTTPRequest(method: "POST", url: URL(string: base + path)!,
                                              headers: token.map { [("Authorization", "Bearer \($0)")] } ?? [])).status
        }
        let retryRefused = try await post("/jobs/\(failing)/retry", token: nil)
        XCTAssertEqual(retryRefused, 401)
        let retryWrong = try await post("/jobs/\(failing)/retry", token: "wrong-token-0123456789")
        XCTAssertEqual(retryWrong, 401)
        let cancelRefused = try await post("/jobs/\(waiting)/cancel", token: nil)
        XCTAssertEqual(cancelRefused, 401)
        let unchanged = try await conn.query("SELECT count(*) AS n FROM maintenance_jobs WHERE id IN ($1, $2) AND state IN ('failed', 'available')", [failing, waiting])
        XCTAssertEqual(unchanged.first?["n"], "2", "refused actions change nothing")
        let retried = try await post("/jobs/\(failing)/retry", token: token)
        XCTAssertEqual(retried, 200)
        let cancelled = try await post("/jobs/\(waiting)/cancel", token: token)
        XCTAssertEqual(cancelled, 200)
        let cancelAgain = try await post("/jobs/\(waiting)/cancel", token: token)
        XCTAssertEqual(cancelAgain, 409, "a cancelled job cannot be cancelled again")
        let missing = try await post("/jobs/999999/retry", token: token)
        XCTAssertEqual(missing, 404)
        // The retried job ran again (a second error recorded) and failed again.
        let reran = try await eventually(timeout: 30) {
            try await conn.query("SELECT jsonb_array_length(errors) AS n, state FROM maintenance_jobs WHERE id = $1", [failing]).first.map {
                $0["n"] == "2" && $0["state"] == "failed"
            } ?? false
        }
        XCTAssertTrue(reran)
        let after = try await Self.chromiumDOM(base + "/", profile: profile)
        XCTAssertTrue(after.contains("data-state=\"cancelled\"><b class=\"count\">1</b>"), "the page shows the cancel")

        worker.signal(SIGTERM)
        XCTAssertEqual(worker.wait(seconds: 40), 0)
        XCTAssertFalse(try String(contentsOfFile: log, encoding: .utf8).contains(token), "the token never reaches the log")
    }
}
