import Backup
import ChildProcess
import Foundation
import JobQueue
import MaintenanceTasks
import MarketDataTasks
import Operations
import Polygon
import PostgresClient
import Yams

/// A config file value that cannot be used, named by its dotted key.
struct ConfigError: Error, CustomStringConvertible {
    /// The file.
    let file: String
    /// The dotted key, e.g. `worker.lease_seconds`.
    let key: String
    /// What is wrong.
    let reason: String
    var description: String { "config \(file): \(key): \(reason)" }
}

/// Reads one mapping of the YAML config strictly: typed getters, and `finish()` refuses keys
/// nobody asked for (a misspelt key is an error, not silently ignored).
///
/// `CLOSEBELL_<SECTION>_<KEY>` variables (`EnvironmentOverrides`) override the file's values and
/// go through the same getters, so they are validated the same way; an error names the variable.
final class ConfigSection {
    let file: String
    let path: String
    /// The mapping as read from the file.
    let values: [String: Any]
    /// Values from the environment, by key: the variable's name and its text.
    private let overrides: [String: (variable: String, text: String)]
    /// At the top level: the environment's values of each section, by section and key.
    private let sectionOverrides: [String: [String: (variable: String, text: String)]]
    private var used: Set<String> = []

    init(
        file: String, path: String, values: [String: Any], overrides: [String: (variable: String, text: String)] = [:],
        sectionOverrides: [String: [String: (variable: String, text: String)]] = [:]
    ) {
        self.file = file
        self.path = path
        self.values = values
        self.overrides = overrides
        self.sectionOverrides = sectionOverrides
    }

    private func key(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    func raw(_ name: String) -> Any? {
        used.insert(name)
        if let override = overrides[name] { return EnvironmentOverrides.parse(override.text) }
        guard let value = values[name], !(value is NSNull) else { return nil }
        return value
    }

    func fail(_ name: String, _ reason: String) -> ConfigError {
        if let override = overrides[name] {
            return ConfigError(file: "environment", key: "\(override.variable) (\(key(name)))", reason: reason)
        }
        return ConfigError(file: file, key: key(name), reason: reason)
    }

    /// A secret text value: like `string`, but no error ever shows the value.
    func secret(_ name: String) throws -> String? {
        if let override = overrides[name] {
            used.insert(name)
            return override.text
        }
        guard let value = raw(name) else { return nil }
        guard let text = value as? String else { throw fail(name, "expected text (the value is not shown: it is a secret)") }
        return text
    }

    func double(_ name: String, min: Double? = nil) throws -> Double? {
        guard let value = raw(name) else { return nil }
        let number: Double?
        switch value {
        case let d as Double: number = d
        case let i as Int: number = Double(i)
        default: number = nil
        }
        guard let number else { throw fail(name, "expected a number, got \(value)") }
        if let min, number < min { throw fail(name, "must be at least \(min), got \(number)") }
        return number
    }

    func int(_ name: String, min: Int? = nil) throws -> Int? {
        guard let value = raw(name) else { return nil }
        guard let number = value as? Int else { throw fail(name, "expected a whole number, got \(value)") }
        if let min, number < min { throw fail(name, "must be at least \(min), got \(number)") }
        return number
    }

    func string(_ name: String) throws -> String? {
        if let override = overrides[name] {
            used.insert(name)
            return override.text
        }
        guard let value = raw(name) else { return nil }
        guard let text = value as? String else { throw fail(name, "expected text, got \(value)") }
        return text
    }

    func stringList(_ name: String) throws -> [String]? {
        guard let value = raw(name) else { return nil }
        guard let list = value as? [Any], let strings = list as? [String] else {
            throw fail(name, "expected a list of names, got \(value)")
        }
        return strings
    }

    func bool(_ name: String) throws -> Bool? {
        guard let value = raw(name) else { return nil }
        guard let flag = value as? Bool else { throw fail(name, "expected true or false, got \(value)") }
        return flag
    }

    /// A section: the file's mapping and the environment's `CLOSEBELL_<SECTION>_<KEY>` values
    /// for it; nil when neither has any.
    func section(_ name: String) throws -> ConfigSection? {
        let value = raw(name)
        let environment = sectionOverrides[name] ?? [:]
        if value == nil && environment.isEmpty { return nil }
        guard let mapping = (value ?? [String: Any]()) as? [String: Any] else { throw fail(name, "expected a mapping of keys") }
        return ConfigSection(file: file, path: key(name), values: mapping, overrides: environment)
    }

    /// The raw mapping (for sections whose keys are data, like per-table windows).
    func mapping(_ name: String) throws -> [String: Any]? {
        guard let value = raw(name) else { return nil }
        guard let mapping = value as? [String: Any] else { throw fail(name, "expected a mapping of keys") }
        return mapping
    }

    /// The keys present, sorted (for sections whose keys are data).
    func keys() -> [String] { values.keys.sorted() }

    /// The keys present in the file or the environment, sorted.
    func allKeyNames() -> [String] { Set(values.keys).union(overrides.keys).sorted() }

    /// The environment variable's text for `name`, when one sets it.
    func overrideText(_ name: String) -> String? { overrides[name]?.text }

    /// The section `name` decoded into its module's settings type (`decode`); `fallback` (the
    /// defaults) when neither the file nor the environment sets any of its keys.
    func decode<T: Decodable>(_ name: String, or fallback: T) throws -> T {
        guard let section = try section(name) else { return fallback }
        return try section.decode(T.self)
    }

    /// Decodes this section into a module's settings type (which declares its keys, defaults
    /// and checks), then refuses keys nobody read, here and in the mappings below. A refused
    /// value is reported with its dotted key, or its environment variable.
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let opened = OpenedSections()
        let decoder = ConfigDecoder(codingPath: [], value: values, section: self, parent: self, opened: opened)
        let value: T
        do {
            value = try T(from: decoder)
        } catch let error as DecodingError {
            throw configError(error)
        }
        try finish()
        for nested in opened.sections { try nested.finish() }
        return value
    }

    /// A decoding error as the config error a user sees: the dotted key (or the variable) and why.
    private func configError(_ error: DecodingError) -> ConfigError {
        let (path, reason): ([any CodingKey], String)
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            (path, reason) = (context.codingPath, context.debugDescription)
        case .keyNotFound(let key, let context):
            (path, reason) = (context.codingPath + [key], "is required")
        @unknown default:
            (path, reason) = ([], "\(error)")
        }
        let names = path.map(\.stringValue)
        guard let first = names.first else { return ConfigError(file: file, key: self.path, reason: reason) }
        let dotted = ([self.path] + names).filter { !$0.isEmpty }.joined(separator: ".")
        if let override = overrides[first] {
            return ConfigError(file: "environment", key: "\(override.variable) (\(dotted))", reason: reason)
        }
        return ConfigError(file: file, key: dotted, reason: reason)
    }

    /// Refuses keys that were never read.
    func finish() throws {
        if let unknown = overrides.keys.sorted().first(where: { !used.contains($0) }) {
            throw fail(unknown, "unknown key (misspelt? see the README's configuration table)")
        }
        if let unknown = values.keys.sorted().first(where: { !used.contains($0) }) {
            throw ConfigError(file: file, key: key(unknown), reason: "unknown key (misspelt? see the README's configuration table)")
        }
    }
}

/// `CLOSEBELL_<SECTION>_<KEY>` environment variables: any key of the config file, e.g.
/// `CLOSEBELL_WORKER_CONCURRENCY=8` for `worker.concurrency`. They override the file and are
/// overridden by flags. Values are read as YAML scalars (`8`, `1.5`, `true`), lists and
/// mappings in YAML flow style (`[a, b]`, `{fills: 60}`); text keys take the value as it is.
enum EnvironmentOverrides {
    /// The config file's sections, longest first (so `market_data` wins over a `market` prefix).
    static let sections = [
        "worker", "schedule", "polygon", "market_data", "backup", "retention", "vacuum", "compress", "table_sizes", "http", "alerts",
    ].sorted { $0.count > $1.count }

    /// Variables that look like overrides but have meanings of their own (documented in the README).
    static let reserved: Set<String> = [
        "CLOSEBELL_CONFIG", "CLOSEBELL_BACKUP_DIR", "CLOSEBELL_PG_BINDIR", "CLOSEBELL_MIGRATIONS_DIR",
        "CLOSEBELL_TRIGGER_TOKEN", "CLOSEBELL_TRIGGER_TOKEN_FILE", "CLOSEBELL_ALERT_WEBHOOK_URL", "CLOSEBELL_ALERT_WEBHOOK_URL_FILE",
    ]

    /// The overrides in `environment`, by section and key.
    static func collect(_ environment: [String: String] = ProcessInfo.processInfo.environment)
        -> [String: [String: (variable: String, text: String)]] {
        var result: [String: [String: (variable: String, text: String)]] = [:]
        for (variable, text) in environment where variable.hasPrefix("CLOSEBELL_") && !reserved.contains(variable) {
            let rest = variable.dropFirst("CLOSEBELL_".count).lowercased()
            guard let section = sections.first(where: { rest.hasPrefix($0 + "_") }) else { continue }
            let key = String(rest.dropFirst(section.count + 1))
            guard !key.isEmpty else { continue }
            result[section, default: [:]][key] = (variable, text)
        }
        return result
    }

    /// A variable's text as a number (`8`, `1.5`), a boolean (`true`, `false`), or a YAML flow
    /// list or mapping (`[a, b]`, `{k: v}`); anything else is the text itself (so `20:00` stays a
    /// time, not YAML 1.1's base-60 number).
    static func parse(_ text: String) -> Any {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let number = Int(trimmed) { return number }
        if trimmed.range(of: #"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$"#, options: .regularExpression) != nil, let number = Double(trimmed) {
            return number
        }
        switch trimmed.lowercased() {
        case "true": return true
        case "false": return false
        default: break
        }
        if trimmed.hasPrefix("[") || trimmed.hasPrefix("{"), let value = try? Yams.load(yaml: trimmed), !(value is NSNull) { return value }
        return text
    }
}

/// The whole config file, parsed into each module's settings. Every key has a default, so an
/// absent file is the same as an empty one. Environment variables (secrets, URLs) are read
/// here too, and flags override both.
struct ClosebellConfig {
    var worker = WorkerConfiguration()
    /// `worker --schedule`: how often it checks for due cycles.
    var schedule = ScheduleSettings()
    /// The Polygon client and the cluster-wide request budget (the API key from the environment).
    var polygon = PolygonSettings()
    var marketData = MarketDataSettings()
    /// Backups: folder (`CLOSEBELL_BACKUP_DIR` wins), rotation and programs.
    var backup = BackupSettings(directory: BackupSettings.defaultDirectory)
    var retention = RetentionSettings()
    var vacuum = VacuumSettings()
    var compress = CompressSettings()
    /// Extra tables `table_sizes` measures, beyond its defaults and the retention and vacuum tables.
    var tableSizes = TableSizesSettings()
    /// `worker --http`: listen address, trigger token (`CLOSEBELL_TRIGGER_TOKEN` wins).
    var http = HTTPEndpointSettings()
    /// Webhook alerts (`CLOSEBELL_ALERT_WEBHOOK_URL` wins).
    var alerts = AlertSettings()
    /// The file the settings came from, if any.
    var file: String?

    /// Loads `path`, or `$CLOSEBELL_CONFIG`, or nothing (defaults).
    static func load(path: String?) throws -> ClosebellConfig {
        let chosen = path ?? ProcessInfo.processInfo.environment["CLOSEBELL_CONFIG"]
        guard let chosen, !chosen.isEmpty else { return try ClosebellConfig(nil) }
        let text: String
        do {
            text = try String(contentsOfFile: chosen, encoding: .utf8)
        } catch {
            throw ConfigError(file: chosen, key: "(file)", reason: "cannot read: \(error.localizedDescription)")
        }
        let parsed: Any?
        do {
            parsed = try Yams.load(yaml: text)
        } catch {
            throw ConfigError(file: chosen, key: "(file)", reason: "not valid YAML: \(error)")
        }
        if parsed == nil { return try ClosebellConfig(nil) }
        guard let root = parsed as? [String: Any] else {
            throw ConfigError(file: chosen, key: "(file)", reason: "the top level must be a mapping of sections")
        }
        return try ClosebellConfig(ConfigSection(file: chosen, path: "", values: root))
    }

    /// Reads `root` (the file's top-level mapping, nil without a file) with the environment's
    /// `CLOSEBELL_<SECTION>_<KEY>` overrides and secrets (`Secrets`).
    init(_ root: ConfigSection?, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        file = root?.file
        let root = ConfigSection(
            file: root?.file ?? "environment", path: "", values: root?.values ?? [:],
            sectionOverrides: EnvironmentOverrides.collect(environment))

        worker = try root.decode("worker", or: worker)

        schedule = try root.decode("schedule", or: schedule)

        polygon = try root.decode("polygon", or: polygon)
        do {
            try polygon.client.applyEnvironment(try Secrets.environment(environment))
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError(file: "environment", key: "POLYGON_BASE_URL", reason: "\(error)")
        }

        marketData = try root.decode("market_data", or: marketData)

        backup = try root.decode("backup", or: backup)
        backup.applyEnvironment(environment)

        retention = try root.decode("retention", or: retention)

        vacuum = try root.decode("vacuum", or: vacuum)

        compress = try root.decode("compress", or: compress)

        tableSizes = try root.decode("table_sizes", or: tableSizes)

        http = try root.decode("http", or: http)

        if let section = try root.section("alerts") {
            if let v = try section.secret("webhook_url") {
                guard let url = URL(string: v), url.scheme == "http" || url.scheme == "https" else {
                    throw section.fail("webhook_url", "expected an http(s) URL")
                }
                alerts.webhookURL = url
            }
            if let v = try section.double("cooldown_minutes", min: 0) { alerts.cooldownSeconds = v * 60 }
            switch section.raw("daily_deadline") {
            case nil: break
            case let flag as Bool where flag == false: alerts.dailyDeadline = nil   // a bare `off` in YAML
            case let text as String: alerts.dailyDeadline = text == "off" ? nil : text
            case let other?: throw section.fail("daily_deadline", "expected HH:MM or \"off\", got \(other)")
            }
            if let v = try section.string("daily_cycle") { alerts.dailyCycle = v }
            if let v = try section.string("time_zone") { alerts.timeZone = v }
            if let v = try section.double("check_interval_seconds", min: 1) { alerts.checkIntervalSeconds = v }
            if let v = try section.double("initial_lookback_hours", min: 0) { alerts.initialLookbackSeconds = v * 3600 }
            if let v = try section.double("timeout_seconds", min: 1) { alerts.timeoutSeconds = v }
            if let v = try section.int("disk_quota_bytes", min: 1) { alerts.diskQuotaBytes = Int64(v) }
            if let v = try section.double("quota_days", min: 0.1) { alerts.quotaDays = v }
            if let v = try section.int("growth_window_days", min: 2) { alerts.growthWindowDays = v }
            if !Self.isOff(section.raw("backup_disk_percent")), let v = try section.double("backup_disk_percent", min: 0.001) {
                guard v <= 100 else { throw section.fail("backup_disk_percent", "must be at most 100, got \(v)") }
                alerts.backupDiskPercent = v
            } else if section.raw("backup_disk_percent") != nil {
                alerts.backupDiskPercent = nil
            }
            if let v = try section.int("table_growth_bytes_per_day", min: 1) { alerts.tableGrowthBytesPerDay = Int64(v) }
            if !Self.isOff(section.raw("backup_max_age_hours")), let v = try section.double("backup_max_age_hours", min: 0.01) {
                alerts.backupMaxAgeSeconds = v * 3600
            } else if section.raw("backup_max_age_hours") != nil {
                alerts.backupMaxAgeSeconds = nil
            }
            if let v = try section.bool("notify_success") { alerts.notifySuccess = v }
            try section.finish()
        }

        try root.finish()
    }

    /// True for a YAML `off`/`false` (or the text "off"): a check turned off.
    static func isOff(_ value: Any?) -> Bool {
        if let flag = value as? Bool { return !flag }
        return (value as? String)?.lowercased() == "off"
    }

    /// Applies the environment's secrets and URLs to the endpoint and alert settings, and checks them.
    mutating func applyOperationsEnvironment() throws {
        let environment = try Secrets.environment()
        http.applyEnvironment(environment)
        try alerts.applyEnvironment(environment)
        do {
            try http.validate()
            try alerts.validate()
        } catch OperationsError.invalidSetting(let key, let reason) {
            throw ConfigError(file: file ?? "environment", key: key, reason: reason)
        }
    }
}

/// What the subcommands need from configuration: the parsed file, the task registry and
/// the periodic work of `worker --schedule`.
struct RuntimeEnvironment {
    let config: ClosebellConfig
    /// The process's one Polygon client: one rate limiter for every market-data task.
    let polygon: PolygonClient

    /// Loads the configuration. With `conninfo` (a worker) and `polygon.shared_budget` on, the
    /// Polygon client also asks the cluster-wide budget in PostgreSQL for every request.
    static func load(configPath: String?, conninfo: String? = nil) throws -> RuntimeEnvironment {
        var config = try ClosebellConfig.load(path: configPath)
        try config.applyOperationsEnvironment()
        let budget = conninfo.flatMap { config.polygon.budget(conninfo: $0) }
        return RuntimeEnvironment(config: config, polygon: PolygonClient(configuration: config.polygon.client, budget: budget))
    }

    /// Every task this build runs (`TaskList`), with the configured settings.
    func registry() -> TaskRegistry {
        TaskList.registry(
            source: PolygonMarketDataSource(client: polygon),
            settings: TaskList.Settings(
                backup: config.backup, retention: config.retention, vacuum: config.vacuum, compress: config.compress,
                marketData: config.marketData, tableSizesExtra: config.tableSizes.tables))
    }

    /// Periodic work for the worker: the cycle scheduler when `schedule` is set.
    func periodicWork(conninfo: String, schedule: Bool) -> [PeriodicWork] {
        guard schedule else { return [] }
        let scheduler = CycleScheduler()
        return [
            PeriodicWork(name: "cycle_scheduler", intervalSeconds: config.schedule.intervalSeconds) { logger in
                let connection = try await PostgresConnection.connect(conninfo, applicationName: "closebell scheduler")
                let runs = try await scheduler.tick(connection: connection)
                await connection.close()
                for run in runs where run.created {
                    logger.info("cycle_enqueued", metadata: ["cycle": "\(run.cycle)", "period": "\(run.period)", "run_id": "\(run.runID)"])
                }
            },
        ]
    }
}
