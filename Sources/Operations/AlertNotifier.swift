import Foundation
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

    /// Creates settings; every value has the documented default.
    public init(webhookURL: URL? = nil, cooldownSeconds: Double = 3600, dailyDeadline: String? = "20:00", dailyCycle: String = "daily",
                timeZone: String = "America/New_York", checkIntervalSeconds: Double = 60, initialLookbackSeconds: Double = 6 * 3600,
                timeoutSeconds: Double = 10) {
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
    private let conninfo: String?
    private let settings: AlertSettings
    private let http: HTTPClient
    private let logger: Logger
    private var connection: PostgresConnection?

    /// Creates a notifier; it connects on the first check.
    public init(conninfo: String?, settings: AlertSettings, http: HTTPClient, logger: Logger) {
        self.conninfo = conninfo
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
        await connection?.close()
        connection = nil
    }

    /// Looks for failures since the last alert and for a missed daily deadline at `now`, and
    /// sends what is due. Returns the alerts this call sent.
    public func check(now: Date = Date()) async throws -> [SentAlert] {
        guard let url = settings.webhookURL else { return [] }
        do {
            let conn = try await openConnection()
            var sent: [SentAlert] = []
            if let alert = try await checkFailures(conn, url: url, now: now) { sent.append(alert) }
            if let alert = try await checkDeadline(conn, url: url, now: now) { sent.append(alert) }
            return sent
        } catch let error as PostgresError where error.isConnectionLost || error.kind == .connection {
            await close()
            throw error
        }
    }

    private func openConnection() async throws -> PostgresConnection {
        if let connection { return connection }
        let opened = try await PostgresConnection.connect(conninfo, applicationName: "closebell alerts")
        connection = opened
        return opened
    }

    // MARK: - Failures

    private func checkFailures(_ conn: PostgresConnection, url: URL, now: Date) async throws -> SentAlert? {
        let key = "failures"
        let previous = try await conn.query("SELECT sent_at, covered_until FROM maintenance_alerts WHERE key = $1", [key]).first
        let previousSent: Date? = try previous?.decode("sent_at")
        let since: Date = try previous?.decode("covered_until") ?? now.addingTimeInterval(-settings.initialLookbackSeconds)
        guard since < now else { return nil }

        let jobRows = try await conn.query(
            """
            SELECT id, task, run_id, attempts, max_attempts, errors -> -1 ->> 'error' AS error
              FROM maintenance_jobs
             WHERE state = 'failed' AND finished_at > $1 AND finished_at <= $2
             ORDER BY finished_at, id LIMIT 50
            """, [since, now])
        var jobs: [[String: Any]] = []
        var lines: [String] = []
        for row in jobRows {
            let id: Int64 = try row.decode("id"), task: String = try row.decode("task")
            let attempts: Int = try row.decode("attempts"), maxAttempts: Int = try row.decode("max_attempts")
            let error = Redaction.clean(row["error"] ?? "")
            var job: [String: Any] = ["job_id": id, "task": task, "attempts": attempts, "max_attempts": maxAttempts, "error": error]
            if let run: Int64 = try row.decodeIfPresent("run_id") { job["run_id"] = run }
            jobs.append(job)
            lines.append("• \(task) (job \(id), attempt \(attempts)/\(maxAttempts)): \(error.isEmpty ? "no error text" : error)")
        }

        // A run is named when it ended partial or failed in the window and one of its failures
        // (or a skipped task) is new: a run whose failed jobs were already alerted is not repeated.
        let runRows = try await conn.query(
            """
            SELECT r.id, r.cycle, r.period::text AS period, r.state,
                   (SELECT coalesce(jsonb_agg(t ->> 'task' ORDER BY t ->> 'task'), '[]')::text
                      FROM jsonb_array_elements(coalesce(r.outcome -> 'tasks', '[]')) t
                     WHERE t ->> 'state' <> 'succeeded') AS failed_tasks,
                   (SELECT coalesce(jsonb_agg(s ->> 'task'), '[]')::text
                      FROM jsonb_array_elements(coalesce(r.outcome -> 'skipped', '[]')) s) AS skipped_tasks
              FROM maintenance_cycle_runs r
             WHERE r.state IN ('partial', 'failed') AND r.finished_at > $1 AND r.finished_at <= $2
               AND (EXISTS (SELECT 1 FROM maintenance_jobs j WHERE j.run_id = r.id AND j.state IN ('failed', 'cancelled') AND j.finished_at > $1)
                    OR jsonb_array_length(coalesce(r.outcome -> 'skipped', '[]')) > 0
                    OR NOT EXISTS (SELECT 1 FROM maintenance_jobs j WHERE j.run_id = r.id))
             ORDER BY r.finished_at, r.id LIMIT 20
            """, [since, now])
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
        let claimed = try await conn.query(
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
                _ = try? await conn.query("UPDATE maintenance_alerts SET sent_at = $2, covered_until = $3 WHERE key = $1 AND sent_at = $4",
                                          [key, previousSent, covered, now])
            } else {
                _ = try? await conn.query("DELETE FROM maintenance_alerts WHERE key = $1 AND sent_at = $2", [key, now])
            }
            throw error
        }
        logger.warning("alert_sent", metadata: ["key": "\(key)", "failed_tasks": "\(failedTasks.joined(separator: ","))", "webhook_host": "\(url.host ?? "")"])
        return SentAlert(key: key, text: text, body: body)
    }

    // MARK: - Daily deadline

    private func checkDeadline(_ conn: PostgresConnection, url: URL, now: Date) async throws -> SentAlert? {
        guard let deadlineText = settings.dailyDeadline, let deadline = AlertSettings.parseTime(deadlineText),
              let zone = TimeZone(identifier: settings.timeZone) else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: now)
        guard let hour = parts.hour, let minute = parts.minute, let y = parts.year, let m = parts.month, let d = parts.day,
              hour * 60 + minute >= deadline else { return nil }
        let day = String(format: "%04d-%02d-%02d", y, m, d)
        let cycle = settings.dailyCycle
        guard let row = try await conn.query(
            """
            SELECT maintenance_is_trading_day($2::date) AS trading,
                   EXISTS (SELECT 1 FROM maintenance_cycles WHERE cycle = $1 AND enabled) AS known,
                   (SELECT r.state FROM maintenance_cycle_runs r WHERE r.cycle = $1 AND r.period = $2::date) AS state,
                   (SELECT r.id FROM maintenance_cycle_runs r WHERE r.cycle = $1 AND r.period = $2::date) AS run_id,
                   (SELECT coalesce(jsonb_agg(DISTINCT j.task), '[]')::text FROM maintenance_jobs j JOIN maintenance_cycle_runs r ON r.id = j.run_id
                     WHERE r.cycle = $1 AND r.period = $2::date AND j.state IN ('failed', 'cancelled')) AS failed_tasks
            """, [cycle, day]).first else { return nil }
        guard try row.decode("trading", as: Bool.self), try row.decode("known", as: Bool.self) else { return nil }
        let state: String? = row["state"]
        guard state != "succeeded" else { return nil }
        let failed = (OpsFormat.parse(row["failed_tasks"]) as? [String]) ?? []
        let key = "daily_deadline:\(cycle):\(day)"
        let situation: String
        if let state, let run = row["run_id"] {
            situation = "run \(run) is \(state)" + (failed.isEmpty ? "" : "; failed tasks: \(failed.joined(separator: ", "))")
        } else {
            situation = "no run was enqueued (is a worker running with --schedule?)"
        }
        let text = "closebell: the \(cycle) cycle has not succeeded by \(deadlineText) \(settings.timeZone) on \(day): \(situation)."
        let claimed = try await conn.query(
            "INSERT INTO maintenance_alerts (key, sent_at, covered_until, summary) VALUES ($1, $2, $2, $3) ON CONFLICT (key) DO NOTHING RETURNING key",
            [key, now, text])
        guard !claimed.isEmpty else { return nil }
        var details: [String: Any] = ["kind": "daily_deadline", "cycle": cycle, "day": day, "deadline": deadlineText,
                                      "time_zone": settings.timeZone, "failed_tasks": failed, "state": state ?? NSNull()]
        if let run: Int64 = try row.decodeIfPresent("run_id") { details["run_id"] = run }
        let body = OpsFormat.jsonData(["text": text, "username": "closebell", "closebell": details])
        do {
            try await post(body, to: url)
        } catch {
            _ = try? await conn.query("DELETE FROM maintenance_alerts WHERE key = $1 AND sent_at = $2", [key, now])
            throw error
        }
        logger.warning("alert_sent", metadata: ["key": "\(key)", "webhook_host": "\(url.host ?? "")"])
        return SentAlert(key: key, text: text, body: body)
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
private final class NotifierHolder: @unchecked Sendable {
    private let lock = NSLock()
    private var notifier: AlertNotifier?
    private let conninfo: String?
    private let settings: AlertSettings
    private let http: HTTPClient

    init(conninfo: String?, settings: AlertSettings, http: HTTPClient) {
        self.conninfo = conninfo
        self.settings = settings
        self.http = http
    }

    func notifier(logger: Logger) -> AlertNotifier {
        lock.withLock {
            if let notifier { return notifier }
            let created = AlertNotifier(conninfo: conninfo, settings: settings, http: http, logger: logger)
            notifier = created
            return created
        }
    }
}

/// Removes what looks like a credential from text that goes into alerts.
enum Redaction {
    private static let patterns: [(String, String)] = [
        (#"(?i)(password|passwd|pwd|apikey|api_key|token|secret)\s*[=:]\s*('[^']*'|"[^"]*"|\S+)"#, "$1=[redacted]"),
        (#"(?i)(bearer)\s+\S+"#, "$1 [redacted]"),
        (#"(?i)([a-z][a-z0-9+.-]*://)[^/@\s]+@"#, "$1[redacted]@"),
    ]

    /// `text` with credentials replaced and cut to 300 characters.
    static func clean(_ text: String) -> String {
        var result = text
        for (pattern, template) in patterns {
            guard let expression = try? NSRegularExpression(pattern: pattern) else { continue }
            result = expression.stringByReplacingMatches(in: result, range: NSRange(result.startIndex..., in: result), withTemplate: template)
        }
        return result.count > 300 ? String(result.prefix(300)) + "…" : result
    }
}
