import Foundation
import HTTPClient
import HTTPServer
import JobQueue
import Logging
import MaintenanceTasks
import Operations
import PostgresClient
import TestSupport
import XCTest

final class AlertTests: XCTestCase {
    private func receiver() throws -> (HTTPServer, Received) {
        let received = Received()
        let server = try HTTPServer.start { request in
            received.append(request.path, request.body)
            return .text("ok")
        }
        return (server, received)
    }

    /// Marks a job failed for good, as the worker would after its last attempt.
    private func fail(_ conn: PostgresConnection, id: Int64, error: String) async throws {
        let errors = try PostgresJSON(encoding: [["attempt": "3", "error": error]])
        _ = try await conn.query(
            "UPDATE maintenance_jobs SET state = 'failed', attempts = 3, max_attempts = 3, started_at = now(), errors = $2 WHERE id = $1",
            [id, errors])
    }

    /// Two failures within the cooldown send one alert (naming the failed tasks, no secret),
    /// even with two notifiers (two workers); after the cooldown the next failure is alerted.
    func testOneAlertForFailuresWithinTheCooldown() async throws {
        let db = try TestCluster.migratedDatabase("ops_alert")
        let (hook, received) = try receiver()
        defer { hook.stop() }
        let secretPath = "hooks/T00000000/B11111111/XXsecretXXwebhookXX"
        var settings = AlertSettings(webhookURL: hook.baseURL.appendingPathComponent(secretPath), cooldownSeconds: 3600, dailyDeadline: nil)
        try settings.validate()
        settings.initialLookbackSeconds = 3600
        let logs = LogCapture()
        let http = HTTPClient()
        let first = AlertNotifier(conninfo: db.url, settings: settings, http: http, logger: logs.logger)
        let second = AlertNotifier(conninfo: db.url, settings: settings, http: http, logger: logs.logger)

        let conn = try await PostgresConnection.connect(db.url)
        // Nothing failed yet: no alert.
        let quiet = try await first.check(now: Date())
        XCTAssertTrue(quiet.isEmpty)

        // A failed backup and a weekly run whose two stages fail (run ends failed).
        let backup: Int64 = try await conn.query("INSERT INTO maintenance_jobs (task) VALUES ('backup') RETURNING id").first!.decode("id")
        try await fail(conn, id: backup, error: "pg_dump exited with status 1: connection to server failed: password=hunter2 host=db")
        let run: Int64 = try await conn.query("SELECT run_id FROM maintenance_enqueue_cycle('weekly')").first!.decode("run_id")
        for _ in 0..<5 {
            let waiting = try await conn.query("SELECT id FROM maintenance_jobs WHERE run_id = $1 AND state = 'available'", [run])
            if waiting.isEmpty { break }
            for row in waiting { try await fail(conn, id: try row.decode("id"), error: "could not connect to postgresql://closebell:s3cr3t@db/market") }
        }
        let runState: String? = try await conn.query("SELECT state FROM maintenance_cycle_runs WHERE id = $1", [run]).first?.decode("state")
        XCTAssertEqual(runState, "failed")

        let t0 = Date()
        let sent = try await first.check(now: t0)
        XCTAssertEqual(sent.count, 1)
        // The other worker checking at the same moment sends nothing.
        let duplicate = try await second.check(now: t0.addingTimeInterval(1))
        XCTAssertTrue(duplicate.isEmpty)

        // A second failure within the cooldown: no new alert from either worker.
        let load: Int64 = try await conn.query("INSERT INTO maintenance_jobs (task) VALUES ('ohlc_daily') RETURNING id").first!.decode("id")
        try await fail(conn, id: load, error: "HTTP 503 from the API")
        let within1 = try await first.check(now: t0.addingTimeInterval(600))
        let within2 = try await second.check(now: t0.addingTimeInterval(900))
        XCTAssertTrue(within1.isEmpty && within2.isEmpty)

        XCTAssertEqual(received.all.count, 1, "exactly one webhook message for failures within the cooldown")
        let message = try XCTUnwrap(received.all.first)
        XCTAssertEqual(message.path, "/" + secretPath)
        let body = try XCTUnwrap(try JSONSerialization.jsonObject(with: message.body) as? [String: Any])
        let text = try XCTUnwrap(body["text"] as? String)
        for task in ["backup", "vacuum", "compress"] { XCTAssertTrue(text.contains(task), "alert does not name \(task): \(text)") }
        XCTAssertTrue(text.contains("cycle weekly"), text)
        let details = try XCTUnwrap(body["closebell"] as? [String: Any])
        XCTAssertEqual(Set(details["failed_tasks"] as? [String] ?? []), ["backup", "vacuum", "compress"])
        let raw = String(decoding: message.body, as: UTF8.self)
        for secret in ["hunter2", "s3cr3t", "XXsecretXX"] {
            XCTAssertFalse(raw.contains(secret), "the alert contains a secret (\(secret))")
            XCTAssertFalse(logs.text.contains(secret), "the logs contain a secret (\(secret))")
        }

        // After the cooldown the failure that came during it is alerted, and only it.
        let later = try await second.check(now: t0.addingTimeInterval(3700))
        XCTAssertEqual(later.count, 1)
        XCTAssertEqual(received.all.count, 2)
        let laterText = try XCTUnwrap(later.first?.text)
        XCTAssertTrue(laterText.contains("ohlc_daily"), laterText)
        XCTAssertFalse(laterText.contains("backup"), laterText)

        await first.close()
        await second.close()
        await conn.close()
    }

    /// The daily deadline alert: sent once on a trading day after the deadline without a
    /// successful run; not before the deadline, not on a weekend, not when the run succeeded.
    func testDailyDeadlineAlertOncePerTradingDay() async throws {
        let db = try TestCluster.migratedDatabase("ops_deadline")
        let (hook, received) = try receiver()
        defer { hook.stop() }
        let settings = AlertSettings(webhookURL: hook.baseURL.appendingPathComponent("deadline"), dailyDeadline: "20:00")
        let notifier = AlertNotifier(conninfo: db.url, settings: settings, http: HTTPClient(), logger: Logger(label: "test"))
        func at(_ iso: String) throws -> Date { try XCTUnwrap(ISO8601DateFormatter().date(from: iso)) }

        // Thursday 2026-11-19, 19:30 in New York (EST, UTC-5): before the deadline.
        let early = try await notifier.check(now: try at("2026-11-20T00:30:00Z"))
        XCTAssertTrue(early.isEmpty)
        // Friday 2026-11-20, 20:30 New York: no run at all -> one alert, and only one.
        let late = try await notifier.check(now: try at("2026-11-21T01:30:00Z"))
        XCTAssertEqual(late.count, 1)
        XCTAssertTrue(late.first?.text.contains("2026-11-20") ?? false)
        XCTAssertTrue(late.first?.text.contains("no run") ?? false)
        let again = try await notifier.check(now: try at("2026-11-21T02:30:00Z"))
        XCTAssertTrue(again.isEmpty)
        // Saturday 2026-11-21, 21:00: not a trading day.
        let weekend = try await notifier.check(now: try at("2026-11-22T02:00:00Z"))
        XCTAssertTrue(weekend.isEmpty)
        // Wednesday 2026-11-18 with a succeeded run: nothing to say.
        let conn = try await PostgresConnection.connect(db.url)
        _ = try await conn.query("INSERT INTO maintenance_cycle_runs (cycle, period, state, finished_at) VALUES ('daily', '2026-11-18', 'succeeded', now())")
        let fine = try await notifier.check(now: try at("2026-11-19T02:00:00Z"))
        XCTAssertTrue(fine.isEmpty)
        // Tuesday 2026-11-17 with a partial run: the alert names it.
        _ = try await conn.query("INSERT INTO maintenance_cycle_runs (cycle, period, state, finished_at) VALUES ('daily', '2026-11-17', 'partial', now())")
        let partial = try await notifier.check(now: try at("2026-11-18T02:00:00Z"))
        XCTAssertEqual(partial.count, 1)
        XCTAssertTrue(partial.first?.text.contains("partial") ?? false)
        XCTAssertEqual(received.all.count, 2)
        await notifier.close()
        await conn.close()
    }

    /// A webhook that answers 500 gets no claim consumed: the alert is sent at the next check.
    func testFailedDeliveryIsRetriedAtTheNextCheck() async throws {
        let db = try TestCluster.migratedDatabase("ops_alert_retry")
        let received = Received()
        let failing = LockedFlag(true)
        let hook = try HTTPServer.start { request in
            if failing.value { return .text("down", status: 500) }
            received.append(request.path, request.body)
            return .text("ok")
        }
        defer { hook.stop() }
        let settings = AlertSettings(webhookURL: hook.baseURL.appendingPathComponent("hook"), dailyDeadline: nil)
        let notifier = AlertNotifier(conninfo: db.url, settings: settings, http: HTTPClient(), logger: Logger(label: "test"))
        let conn = try await PostgresConnection.connect(db.url)
        let id: Int64 = try await conn.query("INSERT INTO maintenance_jobs (task) VALUES ('vacuum') RETURNING id").first!.decode("id")
        try await fail(conn, id: id, error: "disk full")
        do {
            _ = try await notifier.check(now: Date())
            XCTFail("a 500 from the webhook must be an error")
        } catch let error as OperationsError {
            XCTAssertEqual(error, .webhookRejected(status: 500, host: "127.0.0.1"))
        }
        failing.value = false
        let sent = try await notifier.check(now: Date())
        XCTAssertEqual(sent.count, 1)
        XCTAssertEqual(received.all.count, 1)
        XCTAssertTrue(sent.first?.text.contains("vacuum") ?? false)
        await notifier.close()
        await conn.close()
    }

    /// The capacity alerts: with a quota just above the database's size and growth recorded,
    /// the quota alert reaches the webhook once (two workers checking at once), and not again
    /// within the cooldown; the backup disk, table growth, backup age and success notices each
    /// arrive once under their own key.
    func testCapacityAlertsAreSentOncePerCooldown() async throws {
        let db = try TestCluster.migratedDatabase("ops_capacity")
        let (hook, received) = try receiver()
        defer { hook.stop() }
        let backups = FileManager.default.temporaryDirectory.appendingPathComponent("ops-capacity-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: backups, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: backups) }
        let conn = try await PostgresConnection.connect(db.url)

        // Today's sizes, as the daily cycle's last task records them.
        let context = JobContext(jobID: 1, task: "table_sizes", args: PostgresJSON(text: "{}"), attempt: 1, runID: nil,
                                 previousProgress: nil, logger: Logger(label: "test"), conninfo: db.url)
        _ = try await TableSizesTask(configured: [], backupDirectory: backups).run(context)
        let today = try await conn.query("SELECT database_bytes, backup_fs_bytes, backup_fs_free FROM maintenance_capacity").first
        let size: Int64 = try XCTUnwrap(try today?.decode("database_bytes"))
        XCTAssertNotNil(try today?.decodeIfPresent("backup_fs_free", as: Int64.self), "the backup folder's filesystem is recorded")
        // Nine earlier days, 1 MiB a day smaller each: growth of 1 MiB a day.
        _ = try await conn.query(
            """
            INSERT INTO maintenance_capacity (recorded_on, database_bytes)
            SELECT (SELECT max(recorded_on) FROM maintenance_capacity) - g, $1::bigint - g * 1048576 FROM generate_series(1, 9) g
            """, [size])

        let quota = size + 3 * 1_048_576
        let settings = AlertSettings(webhookURL: hook.baseURL.appendingPathComponent("hook"), cooldownSeconds: 3600, dailyDeadline: nil,
                                     diskQuotaBytes: quota, backupDiskPercent: nil, backupMaxAgeSeconds: nil)
        try settings.validate()
        let first = AlertNotifier(conninfo: db.url, settings: settings, http: HTTPClient(), logger: Logger(label: "test"))
        let second = AlertNotifier(conninfo: db.url, settings: settings, http: HTTPClient(), logger: Logger(label: "test"))
        let now = Date()
        async let a = first.check(now: now)
        async let b = second.check(now: now)
        let sent = try await a + b
        XCTAssertEqual(sent.map(\.key), ["capacity:database_quota"])
        XCTAssertEqual(received.all.count, 1)
        let body = try XCTUnwrap(try JSONSerialization.jsonObject(with: received.all[0].body) as? [String: Any])
        XCTAssertTrue((body["text"] as? String ?? "").contains("quota"), "\(body)")
        let details = try XCTUnwrap(body["closebell"] as? [String: Any])
        XCTAssertEqual((details["bytes_per_day"] as? Double).map { ($0 / 1_048_576).rounded() }, 1)
        XCTAssertEqual((details["days_left"] as? Double).map { $0.rounded() }, 3)
        // Within the cooldown: nothing more, from either worker.
        let again = try await first.check(now: now.addingTimeInterval(60))
        let againOther = try await second.check(now: now.addingTimeInterval(120))
        XCTAssertTrue(again.isEmpty && againOther.isEmpty)
        XCTAssertEqual(received.all.count, 1)
        // A quota far away: no alert even after the cooldown.
        var roomy = settings
        roomy.diskQuotaBytes = size + 1_000 * 1_048_576
        _ = try await conn.query("DELETE FROM maintenance_alerts")
        let relaxed = AlertNotifier(conninfo: db.url, settings: roomy, http: HTTPClient(), logger: Logger(label: "test"))
        let none = try await relaxed.check(now: now)
        XCTAssertTrue(none.isEmpty)

        // The other capacity alerts and the success notice, each once.
        _ = try await conn.query(
            """
            INSERT INTO maintenance_table_sizes (recorded_on, table_name, total_bytes, table_bytes, index_bytes, row_estimate)
            SELECT recorded_on - g, table_name, greatest(total_bytes - g * 500000, 0), table_bytes, index_bytes, row_estimate
              FROM maintenance_table_sizes, generate_series(1, 5) g WHERE table_name = 'market_data_daily'
            """)
        _ = try await conn.query(
            "INSERT INTO maintenance_jobs (task, state, attempts, started_at, finished_at, result) VALUES ('backup', 'succeeded', 1, now() - interval '31 hours', now() - interval '30 hours', '{}')")
        let run: Int64 = try await conn.query("SELECT run_id FROM maintenance_enqueue_cycle('weekly')").first!.decode("run_id")
        for _ in 0..<5 {
            _ = try await conn.query(
                "UPDATE maintenance_jobs SET state = 'succeeded', attempts = 1, started_at = now(), result = '{}' WHERE run_id = $1 AND state = 'available'", [run])
        }
        let runState: String? = try await conn.query("SELECT state FROM maintenance_cycle_runs WHERE id = $1", [run]).first?.decode("state")
        XCTAssertEqual(runState, "succeeded")
        var everything = roomy
        everything.backupDiskPercent = 0.001
        everything.tableGrowthBytesPerDay = 1000
        everything.backupMaxAgeSeconds = 26 * 3600
        everything.notifySuccess = true
        let watcher = AlertNotifier(conninfo: db.url, settings: everything, http: HTTPClient(), logger: Logger(label: "test"))
        let others = try await watcher.check(now: Date())
        XCTAssertEqual(Set(others.map(\.key)), ["capacity:backup_disk", "capacity:table_growth", "backup_age", "success:\(run)"])
        XCTAssertTrue(others.first { $0.key == "capacity:table_growth" }?.text.contains("market_data_daily") ?? false)
        let repeated = try await watcher.check(now: Date().addingTimeInterval(60))
        XCTAssertTrue(repeated.isEmpty, "\(repeated.map(\.key))")
        for notifier in [first, second, relaxed, watcher] { await notifier.close() }
        await conn.close()
    }

    func testSettingsAreValidated() throws {
        XCTAssertThrowsError(try AlertSettings(dailyDeadline: "25:00").validate())
        XCTAssertNoThrow(try AlertSettings(dailyDeadline: "off").validate())
        XCTAssertThrowsError(try AlertSettings(cooldownSeconds: -1).validate())
        XCTAssertThrowsError(try AlertSettings(webhookURL: URL(string: "ftp://x/y")).validate())
        XCTAssertThrowsError(try AlertSettings(timeZone: "Mars/Olympus").validate())
        XCTAssertThrowsError(try AlertSettings(diskQuotaBytes: 0).validate())
        XCTAssertThrowsError(try AlertSettings(backupDiskPercent: 120).validate())
        XCTAssertThrowsError(try AlertSettings(growthWindowDays: 1).validate())
        var settings = AlertSettings()
        try settings.applyEnvironment(["CLOSEBELL_ALERT_WEBHOOK_URL": "https://hooks.example.com/services/abc"])
        XCTAssertEqual(settings.webhookURL?.host, "hooks.example.com")
        XCTAssertThrowsError(try settings.applyEnvironment(["CLOSEBELL_ALERT_WEBHOOK_URL": "not a url"]))
    }
}

final class EndpointSettingsTests: XCTestCase {
    func testEndpointSettings() throws {
        var settings = HTTPEndpointSettings(listen: "127.0.0.1:8008", triggerToken: "from-the-config-file-1234")
        try settings.validate()
        settings.applyEnvironment(["CLOSEBELL_TRIGGER_TOKEN": "from-the-environment-5678"])
        XCTAssertEqual(settings.triggerToken, "from-the-environment-5678")
        XCTAssertThrowsError(try HTTPEndpointSettings(listen: "nonsense").validate())
        XCTAssertThrowsError(try HTTPEndpointSettings(triggerToken: "short").validate())
        XCTAssertThrowsError(try HTTPEndpointSettings(databaseTimeoutSeconds: 0).validate())
        XCTAssertThrowsError(try HTTPEndpointSettings(maxConnections: 0).validate())
        XCTAssertThrowsError(try HTTPEndpointSettings(headerTimeoutSeconds: 0).validate())
        XCTAssertThrowsError(try HTTPEndpointSettings(cacheSeconds: -1).validate())
    }
}
