import Foundation
import HTTPClient
import JobQueue
import Logging
import Operations
import PostgresClient
import TestSupport
import XCTest

final class EndpointTests: XCTestCase {
    /// /health and /readyz answer 200 with the database and worker up, 503 naming the database
    /// while the server is stopped, and 200 again once it is back (the endpoint reconnects on
    /// its own). /livez stays 200 through the outage: only stopped loops make it 503.
    func testHealthFollowsTheDatabase() async throws {
        let db = try TestCluster.migratedDatabase("ops_health")
        let worker = RunningWorker(url: db.url, id: "ops-health")
        let server = try OperationsServer.start(port: 0, worker: worker.worker, conninfo: db.url, triggerToken: nil,
                                                logger: Logger(label: "test"), options: OperationsServerOptions(databaseTimeoutSeconds: 2, cacheSeconds: 0))
        let health = server.baseURL.appendingPathComponent("health")
        let readyz = server.baseURL.appendingPathComponent("readyz")
        let livez = server.baseURL.appendingPathComponent("livez")
        let becameHealthy = try await eventually(timeout: 30) { try await TestHTTP.send("GET", health).status == 200 }
        XCTAssertTrue(becameHealthy)

        let cluster = try TestCluster.shared()
        try cluster.stop()
        var restarted = false
        defer { if !restarted { try? cluster.start() } }
        let down = try await TestHTTP.send("GET", health)
        XCTAssertEqual(down.status, 503)
        let body = try TestHTTP.json(down.text)
        XCTAssertEqual(body["database"] as? String, "unavailable")
        let reasons = try XCTUnwrap(body["reasons"] as? [String])
        XCTAssertTrue(reasons.contains { $0.hasPrefix("database:") }, "\(reasons)")
        let readyDown = try await TestHTTP.send("GET", readyz).status
        XCTAssertEqual(readyDown, 503)
        let liveDuringOutage = try await TestHTTP.send("GET", livez).status
        XCTAssertEqual(liveDuringOutage, 200, "liveness does not depend on the database")
        let page = try await TestHTTP.send("GET", server.baseURL)
        XCTAssertEqual(page.status, 200)
        XCTAssertTrue(page.text.contains("unreachable"), "the dashboard says the database is down")
        // /metrics still answers, saying the database is down.
        let metrics = try await TestHTTP.send("GET", server.baseURL.appendingPathComponent("metrics"))
        XCTAssertEqual(metrics.status, 200)
        XCTAssertTrue(metrics.text.contains("closebell_database_up 0\n"))

        try cluster.start()
        restarted = true
        let recovered = try await eventually(timeout: 30) { try await TestHTTP.send("GET", health).status == 200 }
        XCTAssertTrue(recovered, "/health did not return to 200 after the database came back")

        // A stopped worker makes the endpoint unhealthy even with the database up.
        await worker.stop()
        let stopped = try await TestHTTP.send("GET", health)
        XCTAssertEqual(stopped.status, 503)
        XCTAssertEqual(try TestHTTP.json(stopped.text)["worker"] as? String, "stopped")
        let liveStopped = try await TestHTTP.send("GET", livez).status
        XCTAssertEqual(liveStopped, 503, "stopped loops are not alive")
        server.stop()
    }

    /// /metrics parses as Prometheus text; job counters, the histogram and queue gauges move
    /// when jobs run through a real worker; /status reports the queue and the worker.
    func testMetricsParseAndMoveWhenJobsRun() async throws {
        let db = try TestCluster.migratedDatabase("ops_metrics")
        let backupDir = FileManager.default.temporaryDirectory.appendingPathComponent("ops-backups-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: backupDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: backupDir) }
        try Data(repeating: 7, count: 1234).write(to: backupDir.appendingPathComponent("m_20261120_220000.sql.gz"))
        try Data(repeating: 7, count: 99).write(to: backupDir.appendingPathComponent(".m_partial.sql.gz.tmp"))

        let worker = RunningWorker(url: db.url, id: "ops-metrics")
        let server = try OperationsServer.start(
            port: 0, worker: worker.worker, conninfo: db.url, triggerToken: nil, logger: Logger(label: "test"),
            options: OperationsServerOptions(backupDirectory: backupDir, apiRequests: { ["200": 41, "429": 2] }, cacheSeconds: 0, counterLagSeconds: 0))
        let metricsURL = server.baseURL.appendingPathComponent("metrics")

        let before = try PrometheusParser.parse(try await TestHTTP.send("GET", metricsURL).text)
        func value(_ parsed: [PrometheusSample], _ name: String, _ labels: [String: String] = [:]) -> Double? {
            parsed.first { $0.name == name && $0.labels == labels }?.value
        }
        XCTAssertNil(value(before.samples, "closebell_jobs_finished_total", ["task": "noop", "outcome": "succeeded"]))

        let conn = try await PostgresConnection.connect(db.url)
        _ = try await conn.query("INSERT INTO maintenance_jobs (task, args) SELECT 'noop', '{\"sleep_ms\": 5}' FROM generate_series(1, 5)")
        _ = try await conn.query("INSERT INTO maintenance_jobs (task, args, max_attempts) VALUES ('noop', '{\"fail_times\": 1}', 1)")
        let done = try await eventually(timeout: 30) {
            let row = try await conn.query("SELECT count(*) FILTER (WHERE state IN ('succeeded', 'failed')) AS n FROM maintenance_jobs").first
            return try row?.decode("n", as: Int64.self) == 6 && worker.worker.stats.snapshot().jobsFinished == 6
        }
        XCTAssertTrue(done)

        let text = try await TestHTTP.send("GET", metricsURL).text
        let after = try PrometheusParser.parse(text)
        XCTAssertEqual(value(after.samples, "closebell_jobs_finished_total", ["task": "noop", "outcome": "succeeded"]), 5)
        XCTAssertEqual(value(after.samples, "closebell_jobs_finished_total", ["task": "noop", "outcome": "failed"]), 1)
        XCTAssertEqual(after.types["closebell_jobs_finished_total"], "counter")
        XCTAssertEqual(after.types["closebell_job_duration_seconds"], "histogram")
        // Every sample belongs to a family declared with HELP and TYPE.
        for sample in after.samples {
            let family = ["_bucket", "_sum", "_count"].reduce(sample.name) { name, suffix in
                after.types[name] == nil && name.hasSuffix(suffix) ? String(name.dropLast(suffix.count)) : name
            }
            XCTAssertNotNil(after.types[family], "no TYPE for \(sample.name)")
            XCTAssertTrue(after.helps.contains(family), "no HELP for \(sample.name)")
        }
        // Histogram: cumulative buckets, increasing bounds, +Inf equal to _count.
        let buckets = after.samples.filter { $0.name == "closebell_job_duration_seconds_bucket" }
        let bounds = try buckets.map { try XCTUnwrap($0.labels["le"] == "+Inf" ? Double.infinity : Double($0.labels["le"] ?? "")) }
        XCTAssertEqual(bounds, bounds.sorted())
        XCTAssertEqual(bounds.last, .infinity)
        XCTAssertEqual(buckets.map(\.value), buckets.map(\.value).sorted())
        XCTAssertEqual(buckets.last?.value, value(after.samples, "closebell_job_duration_seconds_count"))
        XCTAssertEqual(value(after.samples, "closebell_job_duration_seconds_count"), 6)
        XCTAssertGreaterThan(value(after.samples, "closebell_job_duration_seconds_sum") ?? 0, 0)

        XCTAssertEqual(value(after.samples, "closebell_queue_jobs", ["state": "succeeded", "task": "noop"]), 5)
        XCTAssertEqual(value(after.samples, "closebell_queue_depth", ["state": "failed"]), 1)
        XCTAssertEqual(value(after.samples, "closebell_queue_depth", ["state": "available"]), 0)
        XCTAssertEqual(value(after.samples, "closebell_queue_oldest_waiting_seconds"), 0)
        XCTAssertEqual(value(after.samples, "closebell_worker_up"), 1)
        XCTAssertEqual(value(after.samples, "closebell_database_up"), 1)
        XCTAssertEqual(value(after.samples, "closebell_api_requests_total", ["status": "429"]), 2)
        XCTAssertEqual(value(after.samples, "closebell_backup_files"), 1)
        XCTAssertEqual(value(after.samples, "closebell_backup_latest_bytes"), 1234)
        let newest = try XCTUnwrap(value(after.samples, "closebell_backup_latest_timestamp_seconds"))
        XCTAssertLessThanOrEqual(abs(newest - Date().timeIntervalSince1970), 3600, "a Unix timestamp, not an age")
        XCTAssertGreaterThan(value(after.samples, "closebell_backup_disk_free_bytes") ?? 0, 0)
        XCTAssertGreaterThan(value(after.samples, "closebell_backup_disk_size_bytes") ?? 0, 0)
        XCTAssertGreaterThan(value(after.samples, "closebell_database_size_bytes") ?? 0, 1_000_000)
        XCTAssertEqual(after.types["closebell_rows_written_total"], "counter")
        XCTAssertEqual(after.types["closebell_rows_removed_total"], "counter")
        XCTAssertFalse(text.contains("_24h"), "no rolling-window gauges")
        // Rows counters add each succeeded job once, from any worker, and never go down.
        _ = try await conn.query(
            "INSERT INTO maintenance_jobs (task, state, attempts, started_at, finished_at, result) VALUES ('ohlc_daily', 'succeeded', 1, now(), now(), '{\"rows_written\": 700}')")
        let counted = try PrometheusParser.parse(try await TestHTTP.send("GET", metricsURL).text)
        XCTAssertEqual(value(counted.samples, "closebell_rows_written_total", ["task": "ohlc_daily", "table": "market_data_daily"]), 700)
        let again = try PrometheusParser.parse(try await TestHTTP.send("GET", metricsURL).text)
        XCTAssertEqual(value(again.samples, "closebell_rows_written_total", ["task": "ohlc_daily", "table": "market_data_daily"]), 700)

        // A job that is due but unclaimed shows in the oldest-waiting gauge.
        _ = try await conn.query("INSERT INTO maintenance_jobs (task, queue, run_at) VALUES ('noop', 'elsewhere', now() - interval '90 seconds')")
        let waiting = try PrometheusParser.parse(try await TestHTTP.send("GET", metricsURL).text)
        XCTAssertGreaterThanOrEqual(value(waiting.samples, "closebell_queue_oldest_waiting_seconds") ?? 0, 90)

        let status = try TestHTTP.json(try await TestHTTP.send("GET", server.baseURL.appendingPathComponent("status")).text)
        let queue = try XCTUnwrap(status["queue"] as? [String: Any])
        XCTAssertEqual((queue["by_state"] as? [String: Int])?["succeeded"], 6)
        XCTAssertEqual((status["worker"] as? [String: Any])?["jobs_finished"] as? Int, 6)
        XCTAssertNotNil(status["running"] as? [Any])
        XCTAssertNotNil(status["cycles"] as? [Any])

        let missing = try await TestHTTP.send("GET", server.baseURL.appendingPathComponent("nope"))
        XCTAssertEqual(missing.status, 404)
        await conn.close()
        await worker.stop()
        server.stop()
    }

    /// /trigger: disabled without a token (403); 401 without or with a wrong token; with the
    /// right one it enqueues the cycle once (idempotent per period); the token is never logged.
    func testTriggerNeedsTheTokenAndIsIdempotent() async throws {
        let db = try TestCluster.migratedDatabase("ops_trigger")
        let worker = RunningWorker(url: db.url, id: "ops-trigger")
        defer { worker.worker.requestStop() }
        let token = "tr1gger-T0KEN-value-9f8e7d"
        let logs = LogCapture()

        let disabled = try OperationsServer.start(port: 0, worker: worker.worker, conninfo: db.url, triggerToken: nil, logger: logs.logger)
        let refused = try await TestHTTP.send("POST", disabled.baseURL.appendingPathComponent("trigger").appending(queryItems: [URLQueryItem(name: "cycle", value: "weekly")]),
                                              headers: [("Authorization", "Bearer \(token)")])
        XCTAssertEqual(refused.status, 403)
        disabled.stop()

        let server = try XCTUnwrap(try OperationsServer.start(settings: HTTPEndpointSettings(listen: "127.0.0.1:0", triggerToken: token), worker: worker.worker, conninfo: db.url, logger: logs.logger))
        let url = server.baseURL.appendingPathComponent("trigger").appending(queryItems: [URLQueryItem(name: "cycle", value: "weekly")])
        let noToken = try await TestHTTP.send("POST", url)
        XCTAssertEqual(noToken.status, 401)
        let wrong = try await TestHTTP.send("POST", url, headers: [("Authorization", "Bearer \(token)x")])
        XCTAssertEqual(wrong.status, 401)
        let prefix = try await TestHTTP.send("POST", url, headers: [("Authorization", "Bearer \(token.dropLast())")])
        XCTAssertEqual(prefix.status, 401)
        let basic = try await TestHTTP.send("POST", url, headers: [("Authorization", "Basic \(token)")])
        XCTAssertEqual(basic.status, 401)
        let get = try await TestHTTP.send("GET", url, headers: [("Authorization", "Bearer \(token)")])
        XCTAssertEqual(get.status, 405)

        let first = try TestHTTP.json(try await TestHTTP.send("POST", url, headers: [("Authorization", "Bearer \(token)")]).text)
        let runID = try XCTUnwrap(first["run_id"] as? Int)
        XCTAssertEqual(first["created"] as? Bool, true)
        let second = try TestHTTP.json(try await TestHTTP.send("POST", url, headers: [("Authorization", "Bearer \(token)")]).text)
        XCTAssertEqual(second["run_id"] as? Int, runID)
        XCTAssertEqual(second["created"] as? Bool, false)

        let conn = try await PostgresConnection.connect(db.url)
        let runs = try await conn.query("SELECT count(*) AS n FROM maintenance_cycle_runs WHERE cycle = 'weekly'")
        XCTAssertEqual(try runs.first?.decode("n", as: Int64.self), 1)
        await conn.close()

        let unknown = try await TestHTTP.send("POST", server.baseURL.appendingPathComponent("trigger").appending(queryItems: [URLQueryItem(name: "cycle", value: "hourly")]),
                                              headers: [("Authorization", "Bearer \(token)")])
        XCTAssertEqual(unknown.status, 404)
        XCTAssertTrue(unknown.text.contains("hourly"))
        let noCycle = try await TestHTTP.send("POST", server.baseURL.appendingPathComponent("trigger"), headers: [("Authorization", "Bearer \(token)")])
        XCTAssertEqual(noCycle.status, 400)
        // period and force reach maintenance_enqueue_cycle: an earlier week's run, forced.
        let forced = try TestHTTP.json(try await TestHTTP.send(
            "POST", server.baseURL.appendingPathComponent("trigger").appending(queryItems: [
                URLQueryItem(name: "cycle", value: "weekly"), URLQueryItem(name: "period", value: "2026-01-07"), URLQueryItem(name: "force", value: "true"),
            ]), headers: [("Authorization", "Bearer \(token)")]).text)
        XCTAssertEqual(forced["created"] as? Bool, true, "\(forced)")
        XCTAssertNotEqual(forced["run_id"] as? Int, runID)
        XCTAssertEqual(forced["period"] as? String, "2026-01-05", "the Monday of that week")
        let badPeriod = try await TestHTTP.send("POST", server.baseURL.appendingPathComponent("trigger").appending(queryItems: [
            URLQueryItem(name: "cycle", value: "weekly"), URLQueryItem(name: "period", value: "yesterday")]), headers: [("Authorization", "Bearer \(token)")])
        XCTAssertEqual(badPeriod.status, 400)
        let badForce = try await TestHTTP.send("POST", server.baseURL.appendingPathComponent("trigger").appending(queryItems: [
            URLQueryItem(name: "cycle", value: "weekly"), URLQueryItem(name: "force", value: "maybe")]), headers: [("Authorization", "Bearer \(token)")])
        XCTAssertEqual(badForce.status, 400)

        XCTAssertTrue(logs.text.contains("trigger_accepted"))
        XCTAssertTrue(logs.text.contains("action_refused"))
        XCTAssertFalse(logs.text.contains("T0KEN"), "the token reached the logs")
        server.stop()
        await worker.stop()
    }

    func testListenAddressParsing() throws {
        XCTAssertTrue(try OperationsServer.parseListen("0.0.0.0:8008") == ("0.0.0.0", 8008))
        XCTAssertTrue(try OperationsServer.parseListen(":8008") == ("127.0.0.1", 8008))
        XCTAssertTrue(try OperationsServer.parseListen("[::1]:9") == ("::1", 9))
        XCTAssertThrowsError(try OperationsServer.parseListen("8008"))
        XCTAssertThrowsError(try OperationsServer.parseListen("127.0.0.1:99999"))
    }
}
