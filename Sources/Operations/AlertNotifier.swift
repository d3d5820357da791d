import Foundation
import Toolkit
import HTTPClient
import JobQueue
import Logging
import PostgresClient

/// Settings of the alert webhook (config section `alerts:`).
public struct AlertSettings: Sendable {
    /// The Slack-compatible webhook. nil disables alerts. Env `CLOSEBELL_ALERT_WEBHOOK_URL` wins over the file.
    /// A secret (Slack URLs carry their token in the path): only its host is ever logged.
    public var webhookURL: URL?
    /// After an alert of a kind, further alerts of that kind wait this long; failures meanwhile
    /// are named by the next alert. Default 3600 s.
    public var cooldownSeconds: Double
    /// `HH:MM` in `timeZone` by which the daily cycle must have succeeded on a trading day
    /// (default `20:00`); nil, empty or `off` disables the check.
    public var dailyDeadline: String?
    /// The cycle the deadline watches. Default `daily`.
    public var dailyCycle: String
    /// The deadline's time zone. Default `America/New_York`.
    public var timeZone: String
    /// Seconds between checks when run as periodic work. Default 60.
    public var checkIntervalSeconds: Double
    /// On a database that has never sent an alert, failures this old are still reported. Default 6 h.
    public var initialLookbackSeconds: Double
    /// Seconds allowed for the webhook POST. Default 10.
    public var timeoutSeconds: Double
    /// The disk space the database may use, in bytes; nil (default) turns the quota alert off.
    public var diskQuotaBytes: Int64?
    /// Alert when the database's growth, fitted linearly over the recorded history, would reach
    /// `diskQuotaBytes` within this many days. Default 30.
    public var quotaDays: Double
    /// Days of recorded history (`maintenance_capacity`, `maintenance_table_sizes`) the growth
    /// fits use. Default 30.
    public var growthWindowDays: Int
    /// Alert when the backup folder's filesystem is more than this percent used; nil turns it off. Default 80.
    public var backupDiskPercent: Double?
    /// Alert when a table grows faster than this many bytes per day (fitted over the window);
    /// nil (default) turns it off.
    public var tableGrowthBytesPerDay: Int64?
    /// Alert when the newest backup is older than this many seconds; nil turns it off. Default 26 h.
    public var backupMaxAgeSeconds: Double?
    /// Also send a notice when a cycle run succeeds. Default false.
    public var notifySuccess: Bool

    /// Creates settings; every value has the documented default.
    public init(webhookURL: URL? = nil, cooldownSeconds: Double = 3600, dailyDeadline: String? = "20:00", dailyCycle: String = "daily",
                timeZone: String = "America/New_York", checkIntervalSeconds: Double = 60, initialLookbackSeconds: Double = 6 * 3600,
                timeoutSeconds: Double = 10, diskQuotaBytes: Int64? = nil, quotaDays: Double = 30, growthWindowDays: Int = 30,
                backupDiskPercent: Double? = 80, tableGrowthBytesPerDay: Int64? = nil, backupMaxAgeSeconds: Double? = 26 * 3600,
                notifySuccess: Bool = false) {
        self.diskQuotaBytes = diskQuotaBytes
        self.quotaDays = quotaDays
        self.growthWindowDays = growthWindowDays
        self.backupDiskPercent = backupDiskPercent
        self.tableGrowthBytesPerDay = tableGrowthBytesPerDay
        self.backupMaxAgeSeconds = backupMaxAgeSeconds
        self.notifySuccess = notifySuccess
        self.webhookURL = webhookURL
        self.cooldownSeconds = cooldownSeconds
        self.dailyDeadline = dailyDeadline
        self.dailyCycle = dailyCycle
        self.timeZone = timeZone
        self.checkIntervalSeconds = checkIntervalSeconds
        self.initialLookbackSeconds = initialLookbackSeconds
        self.timeoutSeconds = timeoutSeconds
    }

    /// Applies `CLOSEBELL_ALERT_WEBHOOK_URL` when set (it wins over the config file).
    public mutating func applyEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        if let text = environment["CLOSEBELL_ALERT_WEBHOOK_URL"], !text.isEmpty {
            guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme), url.host != nil else {
                throw OperationsError.invalidSetting(key: "CLOSEBELL_ALERT_WEBHOOK_URL", reason: "not an http(s) URL")
            }
            webhookURL = url
        }
    }

    /// Refuses values that cannot work, naming the config key.
    public func validate() throws {
        if let url = webhookURL {
            guard let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme), url.host != nil else {
                throw OperationsError.invalidSetting(key: "alerts.webhook_url", reason: "not an http(s) URL")
            }
        }
        guard cooldownSeconds >= 0, cooldownSeconds.isFinite else {
            throw OperationsError.invalidSetting(key: "alerts.cooldown_minutes", reason: "must not be negative")
        }
        if let deadline = dailyDeadline, !Self.isOff(deadline), Self.parseTime(deadline) == nil {
            throw OperationsError.invalidSetting(key: "alerts.daily_deadline", reason: "expected HH:MM (24-hour), got \"\(deadline)\"")
        }
        guard TimeZone(identifier: timeZone) != nil else {
            throw OperationsError.invalidSetting(key: "alerts.time_zone", reason: "unknown time zone \"\(timeZone)\"")
        }
        guard checkIntervalSeconds > 0, initialLookbackSeconds >= 0, timeoutSeconds > 0 else {
            throw OperationsError.invalidSetting(key: "alerts.check_interval_seconds", reason: "intervals must be positive")
        }
        if let quota = diskQuotaBytes, quota <= 0 {
            throw OperationsError.invalidSetting(key: "alerts.disk_quota_bytes", reason: "must be positive, got \(quota)")
        }
        guard quotaDays > 0, quotaDays.isFinite else {
            throw OperationsError.invalidSetting(key: "alerts.quota_days", reason: "must be positive, got \(quotaDays)")
        }
        guard growthWindowDays >= 2 else {
            throw OperationsError.invalidSetting(key: "alerts.growth_window_days", reason: "must be at least 2 (a fit needs two days), got \(growthWindowDays)")
        }
        if let percent = backupDiskPercent, !(percent > 0 && percent <= 100) {
            throw OperationsError.invalidSetting(key: "alerts.backup_disk_percent", reason: "must be above 0 and at most 100, got \(percent)")
        }
        if let rate = tableGrowthBytesPerDay, rate <= 0 {
            throw OperationsError.invalidSetting(key: "alerts.table_growth_bytes_per_day", reason: "must be positive, got \(rate)")
        }
        if let age = backupMaxAgeSeconds, !(age > 0 && age.isFinite) {
            throw OperationsError.invalidSetting(key: "alerts.backup_max_age_hours", reason: "must be positive")
        }
    }

    /// True for the spellings that turn the deadline check off.
    static func isOff(_ text: String) -> Bool {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        return t.isEmpty || t == "off" || t == "none"
    }

    /// `HH:MM` as minutes after midnight, or nil.
    static func parseTime(_ text: String) -> Int? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let h = Int(parts[0]), let m = Int(parts[1]), (0..<24).contains(h), (0..<60).contains(m) else { return nil }
        return h * 60 + m
    }
}

/// An alert that was sent.
public struct SentAlert: Sendable {
    /// The dedupe key (`failures`, or `daily_deadline:daily:2026-11-20`).
    public var key: String
    /// The message text (also the body's `text`).
    public var text: String
    /// The JSON body posted.
    public var body: Data
}

/// Posts a Slack-compatible JSON message (`{"text": …, "closebell": {…}}`) to a webhook when
/// jobs fail for good or cycle runs end partial or failed, and when the daily cycle has not
/// succeeded by the deadline on a trading day.
///
/// Several workers may run it: an alert is sent only by the worker whose
/// `INSERT … ON CONFLICT` on `maintenance_alerts` claims the key (new, or past its cooldown).
/// Failures that arrive during a cooldown are named by the next alert after it. Messages carry
/// task names, ids and error texts with anything that looks like a credential removed; the
/// webhook URL itself is never logged (only its host).
public actor AlertNotifier {
    /// The notifier's own connection: a lost one is dropped and the next check reconnects.
    private let db: DatabaseLink
    private let settings: AlertSettings
    private let http: HTTPClient
    private let logger: Logger

    /// Creates a notifier; it connects on the first check.
    public init(conninfo: String?, settings: AlertSettings, http: HTTPClient, logger: Logger) {
        db = DatabaseLink(conninfo: conninfo, applicationName: "closebell alerts")
        self.settings = settings
        self.http = http
        self.logger = logger
    }

    /// The notifier as periodic work for `Worker(periodic:)`: a check every
    /// `settings.checkIntervalSeconds`. Without a webhook it does nothing.
    public static func periodicWork(conninfo: String?, settings: AlertSettings, http: HTTPClient) -> PeriodicWork {
        let holder = NotifierHolder(conninfo: conninfo, settings: settings, http: http)
        return PeriodicWork(name: "alerts", intervalSeconds: settings.checkIntervalSeconds) { logger in
            guard settings.webhookURL != nil else { return }
            _ = try await holder.notifier(logger: logger).check()
        }
    }

    /// Closes the database connection.
    public func close() async {
        await db.close()
    }

    /// Looks for failures since the last alert and for a missed daily deadline at `now`, and
    /// sends what is due. Returns the alerts this call sent.
    public func check(now: Date = Date()) async throws -> [SentAlert] {
        guard let url = settings.webhookURL else { return [] }
        var sent: [SentAlert] = []
        if let alert = try await checkFailures(db, url: url, now: now) { sent.append(alert) }
        if let alert = try await checkDeadline(db, url: url, now: now) { sent.append(alert) }
        sent += try await checkCapacity(db, url: url, now: now)
        if settings.notifySuccess { sent += try await checkSuccesses(db, url: url, now: now) }
        return sent
    }

    // MARK: - Failures

    private func checkFailures(_ db: DatabaseLink, url: URL, now: Date) async throws -> SentAlert? {
        let key = "failures"
        let previous = try await db.query("SELECT sent_at, covered_until FROM maintenance_alerts WHERE key = $1", [key]).first
        let previousSent: Date? = try previous?.decode("sent_at")
        let since: Date = try previous?.decode("covered_until") ?? now.addingTimeInterval(-settings.initialLookbackSeconds)
        guard since < now else { return nil }

        let jobRows = try await db.run { try QueueStore.failedJobs($0, finishedAfter: since, through: now, limit: 50) }
        var jobs: [[String: Any]] = []
        var lines: [String] = []
        for row in jobRows {
            let id = row.id, task = row.task, attempts = row.attempts, maxAttempts = row.maxAttempts
            let error = Redactor.summary(row.lastError ?? "")
            var job: [String: Any] = ["job_id": id, "task": task, "attempts": attempts, "max_attempts": maxAttempts, "error": error]
            if let run = row.runID { job["run_id"] = run }
            jobs.append(job)
            lines.append("• \(task) (job \(id), attempt \(attempts)/\(maxAttempts)): \(error.isEmpty ? "no error text" : error)")
        }

        // A run is named when it ended partial or failed in the window and one of its failures
        // (or a skipped task) is new: a run whose failed jobs were already alerted is not repeated.
        // A run's states are the job states' words plus `partial`: $3 is succeeded, $4 failed.
        let candidates = try await db.query(
            """
            SELECT r.id, r.cycle, r.period::text AS period, r.state,
                   (SELECT coalesce(jsonb_agg(t ->> 'task' ORDER BY t ->> 'task'), '[]')::text
                      FROM jsonb_array_elements(coalesce(r.outcome -> 'tasks', '[]')) t
                     WHERE t ->> 'state' <> $3) AS failed_tasks,
                   (SELECT coalesce(jsonb_agg(s ->> 'task'), '[]')::text
                      FROM jsonb_array_elements(coalesce(r.outcome -> 'skipped', '[]')) s) AS skipped_tasks
              FROM maintenance_cycle_runs r
             WHERE r.state IN ('partial', $4) AND r.finished_at > $1 AND r.finished_at <= $2
             ORDER BY r.finished_at, r.id
            """, [since, now, JobState.succeeded, JobState.failed])
        let candidateIDs = try candidates.map { try $0.decode("id", as: Int64.self) }
        let runJobs = Dictionary(grouping: try await db.run { try QueueStore.runJobs($0, runIDs: candidateIDs) }) { $0.runID ?? 0 }
        let runRows = try candidates.filter { row in
            let jobs = runJobs[try row.decode("id", as: Int64.self)] ?? []
            let newFailure = jobs.contains { job in
                (job.state == .failed || job.state == .cancelled) && (job.finishedAt.map { $0 > since } ?? false)
            }
            return newFailure || (OpsFormat.parse(row["skipped_tasks"]) as? [String] ?? []).count > 0 || jobs.isEmpty
        }.prefix(20)
        var runs: [[String: Any]] = []
        for row in runRows {
            let failed = (OpsFormat.parse(row["failed_tasks"]) as? [String]) ?? []
            let skipped = (OpsFormat.parse(row["skipped_tasks"]) as? [String]) ?? []
            let cycle: String = try row.decode("cycle"), period: String = try row.decode("period"), state: String = try row.decode("state")
            runs.append(["run_id": try row.decode("id", as: Int64.self), "cycle": cycle, "period": period, "state": state,
                         "failed_tasks": failed, "skipped_tasks": skipped])
            var line = "• cycle \(cycle) \(period) (run \(try row.decode("id", as: Int64.self))) ended \(state)"
            if !failed.isEmpty { line += "; failed tasks: \(failed.joined(separator: ", "))" }
            if !skipped.isEmpty { line += "; skipped: \(skipped.joined(separator: ", "))" }
            lines.append(line)
        }
        guard !jobs.isEmpty || !runs.isEmpty else { return nil }

        let failedTasks = Array(Set(jobs.compactMap { $0["task"] as? String } + runs.flatMap { ($0["failed_tasks"] as? [String]) ?? [] })).sorted()
        let text = "closebell: \(jobs.count) job(s) failed for good, \(runs.count) cycle run(s) ended with failures. "
            + "Failed tasks: \(failedTasks.joined(separator: ", ")).\n" + lines.joined(separator: "\n")
        let body = OpsFormat.jsonData([
            "text": text, "username": "closebell",
            "closebell": ["kind": "failures", "failed_tasks": failedTasks, "failed_jobs": jobs, "cycle_runs": runs,
                          "since": OpsFormat.iso(since), "until": OpsFormat.iso(now)] as [String: Any],
        ])
        // Claim the key: new, or past its cooldown. Another worker that claimed first wins.
        let claimed = try await db.query(
            """
            INSERT INTO maintenance_alerts AS a (key, sent_at, covered_until, summary) VALUES ($1, $2, $2, $3)
            ON CONFLICT (key) DO UPDATE SET sent_at = EXCLUDED.sent_at, covered_until = EXCLUDED.covered_until, summary = EXCLUDED.summary
             WHERE a.sent_at <= EXCLUDED.sent_at - make_interval(secs => $4) AND a.covered_until < EXCLUDED.covered_until
            RETURNING a.key
            """, [key, now, String(text.prefix(2000)), settings.cooldownSeconds])
        guard !claimed.isEmpty else {
            logger.info("alert_suppressed", metadata: ["key": "\(key)", "reason": "cooldown or sent by another worker", "failed_tasks": "\(failedTasks.joined(separator: ","))"])
            return nil
        }
        do {
            try await post(body, to: url)
        } catch {
            // Give the claim back so the next check (here or on another worker) tries again.
            if let previous, let previousSent {
                let covered: Date = try previous.decode("covered_until")
                _ = try? await db.query("UPDATE maintenance_alerts SET sent_at = $2, covered_until = $3 WHERE key = $1 AND sent_at = $4",
                                          [key, previousSent, covered, now])
            } else {
                _ = try? await db.query("DELETE FROM maintenance_alerts WHERE key = $1 AND sent_at = $2", [key, now])
            }
            throw error
        }
        logger.warning("alert_sent", metadata: ["key": "\(key)", "failed_tasks": "\(failedTasks.joined(separator: ","))", "webhook_host": "\(url.host ?? "")"])
        return SentAlert(key: key, text: text, body: body)
    }

    // MARK: - Daily deadline

    private func checkDeadline(_ db: DatabaseLink, url: URL, now: Date) async throws -> SentAlert? {
        guard let deadlineText = settings.dailyDeadline, let deadline = AlertSettings.parseTime(deadlineText),
              let zone = TimeZone(identifier: settings.timeZone) else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: now)
        guard let hour = parts.hour, let minute = parts.minute, let y = parts.year, let m = parts.month, let d = parts.day,
              hour * 60 + minute >= deadline else { return nil }
        let day = String(format: "%04d-%02d-%02d", y, m, d)
        let cycle = settings.dailyCycle
        guard let row = try await db.query(
            """
            SELECT maintenance_is_trading_day($2::date) AS trading,
                   EXISTS (SELECT 1 FROM maintenance_cycles WHERE cycle = $1 AND enabled) AS known,
                   (SELECT r.state FROM maintenance_cycle_runs r WHERE r.cycle = $1 AND r.period = $2::date) AS state,
                   (SELECT r.id FROM maintenance_cycle_runs r WHERE r.cycle = $1 AND r.period = $2::date) AS run_id
            """, [cycle, day]).first else { return nil }
        guard try row.decode("trading", as: Bool.self), try row.decode("known", as: Bool.self) else { return nil }
        let state: String? = row["state"]
        guard state != JobState.succeeded.rawValue else { return nil }
        let runID: Int64? = try row.decodeIfPresent("run_id")
        let failed = try await db.run { try QueueStore.runJobs($0, runIDs: runID.map { [$0] } ?? []) }
            .filter { $0.state == .failed || $0.state == .cancelled }
        let failedTasks = Array(Set(failed.map(\.task))).sorted()
        let key = "daily_deadline:\(cycle):\(day)"
        let situation: String
        if let state, let run = runID {
            situation = "run \(run) is \(state)" + (failedTasks.isEmpty ? "" : "; failed tasks: \(failedTasks.joined(separator: ", "))")
        } else {
            situation = "no run was enqueued (is a worker running with --schedule?)"
        }
        let text = "closebell: the \(cycle) cycle has not succeeded by \(deadlineText) \(settings.timeZone) on \(day): \(situation)."
        var details: [String: Any] = ["kind": "daily_deadline", "cycle": cycle, "day": day, "deadline": deadlineText,
                                      "time_zone": settings.timeZone, "failed_tasks": failedTasks, "state": state ?? NSNull()]
        if let runID { details["run_id"] = runID }
        return try await sendOnceEver(db, url: url, key: key, text: text, now: now, details: details)
    }

    /// Sends `text` under `key` unless the key was ever sent (by any worker): claimed with
    /// `ON CONFLICT DO NOTHING`, given back when the POST fails.
    private func sendOnceEver(_ db: DatabaseLink, url: URL, key: String, text: String, now: Date,
                              details: [String: Any]) async throws -> SentAlert? {
        let claimed = try await db.query(
            "INSERT INTO maintenance_alerts (key, sent_at, covered_until, summary) VALUES ($1, $2, $2, $3) ON CONFLICT (key) DO NOTHING RETURNING key",
            [key, now, text])
        guard !claimed.isEmpty else { return nil }
        let body = OpsFormat.jsonData(["text": text, "username": "closebell", "closebell": details])
        do {
            try await post(body, to: url)
        } catch {
            _ = try? await db.query("DELETE FROM maintenance_alerts WHERE key = $1 AND sent_at = $2", [key, now])
            throw error
        }
        logger.warning("alert_sent", metadata: ["key": "\(key)", "webhook_host": "\(url.host ?? "")"])
        return SentAlert(key: key, text: text, body: body)
    }

    // MARK: - Capacity

    /// The database quota, backup disk, table growth and backup age checks, each its own key
    /// with the cooldown; the figures come from what `table_sizes` recorded.
    private func checkCapacity(_ db: DatabaseLink, url: URL, now: Date) async throws -> [SentAlert] {
        var sent: [SentAlert] = []
        let window = settings.growthWindowDays
        let latest = try await db.query(
            """
            SELECT recorded_on::text AS day, database_bytes, backup_directory, backup_fs_bytes, backup_fs_free,
                   (SELECT regr_slope(database_bytes::float8, (recorded_on - DATE '2000-01-01')::float8)
                      FROM maintenance_capacity h WHERE h.recorded_on > c.recorded_on - $1::int) AS slope,
                   (SELECT count(*) FROM maintenance_capacity h WHERE h.recorded_on > c.recorded_on - $1::int) AS points
              FROM maintenance_capacity c ORDER BY recorded_on DESC LIMIT 1
            """, [window]).first

        if let quota = settings.diskQuotaBytes, let latest {
            let size: Int64 = try latest.decode("database_bytes")
            let slope: Double = try latest.decodeIfPresent("slope") ?? 0
            let points: Int64 = try latest.decode("points")
            let daysLeft = slope > 0 ? Double(quota - size) / slope : .infinity
            if size >= quota || (points >= 2 && daysLeft <= settings.quotaDays) {
                let when = size >= quota ? "is already over it" : String(format: "will reach it in about %.0f days", max(0, daysLeft))
                let text = "closebell: the database is \(Self.bytes(size)) of its \(Self.bytes(quota)) quota and, growing "
                    + "\(Self.bytes(Int64(slope))) a day (fit over \(points) days), \(when)."
                if let alert = try await sendOnce(db, url: url, key: "capacity:database_quota", text: text, now: now, details: [
                    "kind": "database_quota", "database_bytes": size, "quota_bytes": quota, "bytes_per_day": slope,
                    "days_left": daysLeft.isFinite ? daysLeft : NSNull(), "points": points,
                ]) { sent.append(alert) }
            }
        }

        if let limit = settings.backupDiskPercent, let latest, let total: Int64 = try latest.decodeIfPresent("backup_fs_bytes"),
           let free: Int64 = try latest.decodeIfPresent("backup_fs_free"), total > 0 {
            let used = 100 * Double(total - free) / Double(total)
            if used > limit {
                let folder = latest["backup_directory"] ?? "?"
                let text = String(format: "closebell: the backup folder's disk is %.1f%% used (above %.0f%%): ", used, limit)
                    + "\(Self.bytes(free)) free of \(Self.bytes(total)) at \(folder)."
                if let alert = try await sendOnce(db, url: url, key: "capacity:backup_disk", text: text, now: now, details: [
                    "kind": "backup_disk", "used_percent": used, "threshold_percent": limit, "free_bytes": free, "size_bytes": total,
                    "backup_directory": folder,
                ]) { sent.append(alert) }
            }
        }

        if let rate = settings.tableGrowthBytesPerDay {
            let rows = try await db.query(
                """
                SELECT table_name, regr_slope(total_bytes::float8, (recorded_on - DATE '2000-01-01')::float8) AS slope, count(*) AS points
                  FROM maintenance_table_sizes
                 WHERE recorded_on > (SELECT max(recorded_on) FROM maintenance_table_sizes) - $1::int
                 GROUP BY table_name HAVING count(*) >= 2
                    AND regr_slope(total_bytes::float8, (recorded_on - DATE '2000-01-01')::float8) > $2::float8
                 ORDER BY slope DESC LIMIT 20
                """, [window, Double(rate)])
            if !rows.isEmpty {
                var tables: [[String: Any]] = []
                var parts: [String] = []
                for row in rows {
                    let name: String = try row.decode("table_name")
                    let slope: Double = try row.decode("slope")
                    tables.append(["table": name, "bytes_per_day": slope, "points": try row.decode("points", as: Int64.self)])
                    parts.append("\(name) +\(Self.bytes(Int64(slope)))/day")
                }
                let text = "closebell: tables growing faster than \(Self.bytes(rate)) a day: \(parts.joined(separator: ", "))."
                if let alert = try await sendOnce(db, url: url, key: "capacity:table_growth", text: text, now: now, details: [
                    "kind": "table_growth", "threshold_bytes_per_day": rate, "tables": tables,
                ]) { sent.append(alert) }
            }
        }

        if let maxAge = settings.backupMaxAgeSeconds {
            let newestJob = try await db.run { try QueueStore.lastSucceeded($0, task: "backup") }
            let newest: Date? = try await db.query(
                "SELECT greatest($1::timestamptz, (SELECT newest_backup_at FROM maintenance_capacity ORDER BY recorded_on DESC LIMIT 1)) AS at",
                [newestJob]).first?.decodeIfPresent("at")
            // No backup at all yet is a new installation, not a stale backup.
            if let newest, now.timeIntervalSince(newest) > maxAge {
                let hours = now.timeIntervalSince(newest) / 3600
                let text = String(format: "closebell: the newest backup is %.1f hours old (limit %.0f h), from ", hours, maxAge / 3600)
                    + "\(OpsFormat.iso(newest))."
                if let alert = try await sendOnce(db, url: url, key: "backup_age", text: text, now: now, details: [
                    "kind": "backup_age", "newest_backup_at": OpsFormat.iso(newest), "age_seconds": now.timeIntervalSince(newest),
                    "max_age_seconds": maxAge,
                ]) { sent.append(alert) }
            }
        }
        return sent
    }

    // MARK: - Success notices

    /// One notice per cycle run that succeeded since the lookback (`alerts.notify_success`).
    private func checkSuccesses(_ db: DatabaseLink, url: URL, now: Date) async throws -> [SentAlert] {
        var sent: [SentAlert] = []
        let rows = try await db.query(
            """
            SELECT r.id, r.cycle, r.period::text AS period, extract(epoch FROM r.finished_at - r.started_at)::float8 AS seconds
              FROM maintenance_cycle_runs r
             WHERE r.state = $3 AND r.finished_at > $1 AND r.finished_at <= $2
               AND NOT EXISTS (SELECT 1 FROM maintenance_alerts a WHERE a.key = 'success:' || r.id)
             ORDER BY r.finished_at LIMIT 10
            """, [now.addingTimeInterval(-settings.initialLookbackSeconds), now, JobState.succeeded])
        let runIDs = try rows.map { try $0.decode("id", as: Int64.self) }
        let counts = try await db.run { try QueueStore.runJobCounts($0, runIDs: runIDs) }
        for row in rows {
            let id: Int64 = try row.decode("id"), cycle: String = try row.decode("cycle"), period: String = try row.decode("period")
            let seconds: Double = try row.decodeIfPresent("seconds") ?? 0
            let tasks = Int64(counts[id]?.values.reduce(0, +) ?? 0)
            let text = "closebell: cycle \(cycle) \(period) (run \(id)) succeeded: \(tasks) tasks in \(Int(seconds.rounded())) s."
            if let alert = try await sendOnceEver(db, url: url, key: "success:\(id)", text: text, now: now, details: [
                "kind": "cycle_succeeded", "run_id": id, "cycle": cycle, "period": period, "seconds": seconds, "tasks": tasks,
            ]) { sent.append(alert) }
        }
        return sent
    }

    /// Sends `text` under `key` when the key is new or past its cooldown, claiming it first so
    /// that of several workers checking at once only one sends; a failed POST gives the claim back.
    private func sendOnce(_ db: DatabaseLink, url: URL, key: String, text: String, now: Date,
                          details: [String: Any]) async throws -> SentAlert? {
        let previous = try await db.query("SELECT sent_at, covered_until FROM maintenance_alerts WHERE key = $1", [key]).first
        let claimed = try await db.query(
            """
            INSERT INTO maintenance_alerts AS a (key, sent_at, covered_until, summary) VALUES ($1, $2, $2, $3)
            ON CONFLICT (key) DO UPDATE SET sent_at = EXCLUDED.sent_at, covered_until = EXCLUDED.covered_until, summary = EXCLUDED.summary
             WHERE a.sent_at <= EXCLUDED.sent_at - make_interval(secs => $4)
            RETURNING a.key
            """, [key, now, String(text.prefix(2000)), settings.cooldownSeconds])
        guard !claimed.isEmpty else {
            logger.info("alert_suppressed", metadata: ["key": "\(key)", "reason": "cooldown or sent by another worker"])
            return nil
        }
        let body = OpsFormat.jsonData(["text": text, "username": "closebell", "closebell": details])
        do {
            try await post(body, to: url)
        } catch {
            if let previous {
                let sentAt: Date = try previous.decode("sent_at"), covered: Date = try previous.decode("covered_until")
                _ = try? await db.query("UPDATE maintenance_alerts SET sent_at = $2, covered_until = $3 WHERE key = $1 AND sent_at = $4",
                                          [key, sentAt, covered, now])
            } else {
                _ = try? await db.query("DELETE FROM maintenance_alerts WHERE key = $1 AND sent_at = $2", [key, now])
            }
            throw error
        }
        logger.warning("alert_sent", metadata: ["key": "\(key)", "webhook_host": "\(url.host ?? "")"])
        return SentAlert(key: key, text: text, body: body)
    }

    static func bytes(_ value: Int64) -> String {
        ByteCountFormatter.string(fromByteCount: value, countStyle: .binary)
    }

    private func post(_ body: Data, to url: URL) async throws {
        let request = HTTPRequest(method: "POST", url: url, headers: [("Content-Type", "application/json")], body: body)
        let response: HTTPResponse
        do {
            response = try await http.send(request)
        } catch let error as HTTPClientError {
            // The client's errors name the URL path, which for Slack holds the secret token.
            throw OperationsError.webhookUnreachable(host: url.host ?? "?", curlCode: error.curlCode)
        }
        guard (200..<300).contains(response.status) else {
            throw OperationsError.webhookRejected(status: response.status, host: url.host ?? "?")
        }
    }
}

/// Creates the notifier on first use, with the worker's logger.
private final class NotifierHolder: Sendable {
    private let notifier = LockedBox<AlertNotifier?>(nil)
    private let conninfo: String?
    private let settings: AlertSettings
    private let http: HTTPClient

    init(conninfo: String?, settings: AlertSettings, http: HTTPClient) {
        self.conninfo = conninfo
        self.settings = settings
        self.http = http
    }

    func notifier(logger: Logger) -> AlertNotifier {
        notifier.withLock { notifier in
            if let notifier { return notifier }
            let created = AlertNotifier(conninfo: conninfo, settings: settings, http: http, logger: logger)
            notifier = created
            return created
        }
    }
}
