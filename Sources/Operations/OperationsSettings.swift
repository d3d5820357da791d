import Foundation
import Toolkit

/// Settings of the worker's HTTP endpoint (config section `http:`).
public struct HTTPEndpointSettings: Sendable, Equatable {
    /// `HOST:PORT` to serve on; nil serves nothing. Default nil (`--http` turns it on;
    /// `--http` without a host part, `:8008`, means loopback).
    public var listen: String?
    /// The bearer token of the actions (`POST /trigger`, `POST /jobs/ID/retry`, `POST /jobs/ID/cancel`); nil or empty disables them (403).
    /// Env `CLOSEBELL_TRIGGER_TOKEN` wins over the file.
    public var triggerToken: String?
    /// Seconds allowed for the endpoint's database connect and statements. Default 3.
    public var databaseTimeoutSeconds: Int
    /// Seconds the database snapshot behind `/status`, `/metrics` and the dashboard (and the readiness `SELECT 1`)
    /// is reused: a scrape storm costs one round of queries per interval. Default 5.
    public var cacheSeconds: Double
    /// Most connections open at once (past it the longest waiter is closed, or the new one
    /// gets 503). Default 256; never more than half the open-file limit.
    public var maxConnections: Int
    /// Seconds a client has for its whole request head. Default 10.
    public var headerTimeoutSeconds: Double
    /// Seconds a keep-alive connection may sit idle between requests. Default 30.
    public var idleTimeoutSeconds: Double
    /// Threads answering requests. Default 8.
    public var handlerThreads: Int
    /// Seconds between the dashboard's refreshes in the browser. Default 5.
    public var dashboardRefreshSeconds: Double

    /// Creates settings; every value has the documented default.
    public init(listen: String? = nil, triggerToken: String? = nil, databaseTimeoutSeconds: Int = 3, cacheSeconds: Double = 5,
                maxConnections: Int = 256, headerTimeoutSeconds: Double = 10, idleTimeoutSeconds: Double = 30, handlerThreads: Int = 8,
                dashboardRefreshSeconds: Double = 5) {
        self.listen = listen
        self.triggerToken = triggerToken
        self.databaseTimeoutSeconds = databaseTimeoutSeconds
        self.cacheSeconds = cacheSeconds
        self.maxConnections = maxConnections
        self.headerTimeoutSeconds = headerTimeoutSeconds
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.handlerThreads = handlerThreads
        self.dashboardRefreshSeconds = dashboardRefreshSeconds
    }

    /// Applies `CLOSEBELL_TRIGGER_TOKEN` when set (it wins over the config file).
    public mutating func applyEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let token = environment["CLOSEBELL_TRIGGER_TOKEN"], !token.isEmpty { triggerToken = token }
    }

    /// Refuses values that cannot work, naming the config key.
    public func validate() throws {
        try validateLimits()
        if let token = triggerToken, !token.isEmpty, token.count < 16 {
            throw OperationsError.invalidSetting(key: "http.trigger_token", reason: "must be at least 16 characters (it guards the dashboard's actions and POST /trigger)")
        }
    }

    /// Every check but the trigger token's (which waits for `CLOSEBELL_TRIGGER_TOKEN`, see `applyEnvironment`).
    func validateLimits() throws {
        if let listen {
            do {
                _ = try OperationsServer.parseListen(listen)
            } catch let error as OperationsError {
                throw OperationsError.invalidSetting(key: "http.listen", reason: error.description)
            }
        }
        guard (1...300).contains(databaseTimeoutSeconds) else {
            throw OperationsError.invalidSetting(key: "http.database_timeout_seconds", reason: "must be 1 to 300, got \(databaseTimeoutSeconds)")
        }
        guard cacheSeconds >= 0, cacheSeconds <= 3600 else {
            throw OperationsError.invalidSetting(key: "http.cache_seconds", reason: "must be 0 to 3600, got \(cacheSeconds)")
        }
        guard (1...100_000).contains(maxConnections) else {
            throw OperationsError.invalidSetting(key: "http.max_connections", reason: "must be 1 to 100000, got \(maxConnections)")
        }
        guard headerTimeoutSeconds > 0, headerTimeoutSeconds <= 600 else {
            throw OperationsError.invalidSetting(key: "http.header_timeout_seconds", reason: "must be above 0 and at most 600, got \(headerTimeoutSeconds)")
        }
        guard idleTimeoutSeconds > 0, idleTimeoutSeconds <= 3600 else {
            throw OperationsError.invalidSetting(key: "http.idle_timeout_seconds", reason: "must be above 0 and at most 3600, got \(idleTimeoutSeconds)")
        }
        guard (1...256).contains(handlerThreads) else {
            throw OperationsError.invalidSetting(key: "http.handler_threads", reason: "must be 1 to 256, got \(handlerThreads)")
        }
        guard dashboardRefreshSeconds >= 1 else {
            throw OperationsError.invalidSetting(key: "http.dashboard_refresh_seconds", reason: "must be at least 1, got \(dashboardRefreshSeconds)")
        }
    }
}

extension HTTPEndpointSettings: Decodable {
    /// The keys of the config file's `http:` section.
    enum CodingKeys: String, CodingKey {
        case listen, triggerToken = "trigger_token", databaseTimeoutSeconds = "database_timeout_seconds", cacheSeconds = "cache_seconds"
        case maxConnections = "max_connections", headerTimeoutSeconds = "header_timeout_seconds", idleTimeoutSeconds = "idle_timeout_seconds"
        case handlerThreads = "handler_threads", dashboardRefreshSeconds = "dashboard_refresh_seconds"
    }

    /// Reads the `http:` section: absent keys keep their defaults; every check but the trigger
    /// token's runs now (that one once `CLOSEBELL_TRIGGER_TOKEN`, which wins, is applied), a
    /// refusal naming the key. The token is a secret: a refusal never shows it.
    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        listen = try c.setting(.listen, listen)
        triggerToken = try c.decodeIfPresent(SecretText.self, forKey: .triggerToken)?.value ?? triggerToken
        databaseTimeoutSeconds = try c.setting(.databaseTimeoutSeconds, databaseTimeoutSeconds, min: 1)
        cacheSeconds = try c.setting(.cacheSeconds, cacheSeconds, min: 0)
        maxConnections = try c.setting(.maxConnections, maxConnections, min: 1)
        headerTimeoutSeconds = try c.setting(.headerTimeoutSeconds, headerTimeoutSeconds, min: 0.1)
        idleTimeoutSeconds = try c.setting(.idleTimeoutSeconds, idleTimeoutSeconds, min: 0.1)
        handlerThreads = try c.setting(.handlerThreads, handlerThreads, min: 1)
        dashboardRefreshSeconds = try c.setting(.dashboardRefreshSeconds, dashboardRefreshSeconds, min: 1)
        do {
            try validateLimits()
        } catch OperationsError.invalidSetting(let key, let reason) {
            throw DecodingError.invalidSetting(c.codingPath, section: "http", dottedKey: key, reason)
        }
    }
}

extension AlertSettings: Decodable {
    /// The keys of the config file's `alerts:` section.
    enum CodingKeys: String, CodingKey {
        case webhookURL = "webhook_url", cooldownMinutes = "cooldown_minutes", dailyDeadline = "daily_deadline", dailyCycle = "daily_cycle"
        case timeZone = "time_zone", checkIntervalSeconds = "check_interval_seconds", initialLookbackHours = "initial_lookback_hours"
        case timeoutSeconds = "timeout_seconds", diskQuotaBytes = "disk_quota_bytes", quotaDays = "quota_days"
        case growthWindowDays = "growth_window_days", backupDiskPercent = "backup_disk_percent"
        case tableGrowthBytesPerDay = "table_growth_bytes_per_day", backupMaxAgeHours = "backup_max_age_hours", notifySuccess = "notify_success"
    }

    /// Reads the `alerts:` section: absent keys keep their defaults; `daily_deadline`,
    /// `backup_disk_percent` and `backup_max_age_hours` take `off`; then the whole is checked
    /// (`validate`), a refusal naming the key. The webhook URL is a secret: a refusal never shows it.
    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let text = try c.decodeIfPresent(SecretText.self, forKey: .webhookURL)?.value {
            guard let url = URL(string: text), url.scheme == "http" || url.scheme == "https" else {
                throw c.invalid(.webhookURL, "expected an http(s) URL")
            }
            webhookURL = url
        }
        cooldownSeconds = try c.setting(.cooldownMinutes, cooldownSeconds / 60, min: 0) * 60
        if c.contains(.dailyDeadline) {
            let value = try c.superDecoder(forKey: .dailyDeadline).singleValueContainer()
            if let flag = try? value.decode(Bool.self), !flag {
                dailyDeadline = nil   // a bare `off` in YAML
            } else if let text = try? value.decode(String.self) {
                dailyDeadline = text == "off" ? nil : text
            } else {
                throw c.invalid(.dailyDeadline, "expected HH:MM or \"off\", got \(Self.shown(value))")
            }
        }
        dailyCycle = try c.setting(.dailyCycle, dailyCycle)
        timeZone = try c.setting(.timeZone, timeZone)
        checkIntervalSeconds = try c.setting(.checkIntervalSeconds, checkIntervalSeconds, min: 1)
        initialLookbackSeconds = try c.setting(.initialLookbackHours, initialLookbackSeconds / 3600, min: 0) * 3600
        timeoutSeconds = try c.setting(.timeoutSeconds, timeoutSeconds, min: 1)
        diskQuotaBytes = try c.setting(.diskQuotaBytes, diskQuotaBytes, min: 1)
        quotaDays = try c.setting(.quotaDays, quotaDays, min: 0.1)
        growthWindowDays = try c.setting(.growthWindowDays, growthWindowDays, min: 2)
        if c.isOff(.backupDiskPercent) {
            backupDiskPercent = nil
        } else if let percent = try c.setting(.backupDiskPercent, nil as Double?, min: 0.001) {
            guard percent <= 100 else { throw c.invalid(.backupDiskPercent, "must be at most 100, got \(percent)") }
            backupDiskPercent = percent
        }
        tableGrowthBytesPerDay = try c.setting(.tableGrowthBytesPerDay, tableGrowthBytesPerDay, min: 1)
        if c.isOff(.backupMaxAgeHours) {
            backupMaxAgeSeconds = nil
        } else if let hours = try c.setting(.backupMaxAgeHours, nil as Double?, min: 0.01) {
            backupMaxAgeSeconds = hours * 3600
        }
        notifySuccess = try c.setting(.notifySuccess, default: notifySuccess)
        do {
            try validate()
        } catch OperationsError.invalidSetting(let key, let reason) {
            throw DecodingError.invalidSetting(c.codingPath, section: "alerts", dottedKey: key, reason)
        }
    }

    /// A value that is neither a flag nor text, as a refusal shows it.
    private static func shown(_ value: any SingleValueDecodingContainer) -> String {
        if let number = try? value.decode(Int.self) { return "\(number)" }
        if let number = try? value.decode(Double.self) { return "\(number)" }
        if let flag = try? value.decode(Bool.self) { return "\(flag)" }
        return "a list or mapping"
    }
}
