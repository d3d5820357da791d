import Backup
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

/// The whole config file, composed of the modules' sections: each settings type decodes its own
/// section (`Decodable`: its keys, defaults and checks in one place, refusals naming the dotted
/// key); this only says which section is whose. Every key has a default, so an absent file is
/// the same as an empty one. Environment variables (secrets, URLs) are applied here too, and
/// flags override both.
struct ClosebellConfig {
    /// `worker:` (JobQueue).
    var worker = WorkerConfiguration()
    /// `worker --schedule`: how often it checks for due cycles.
    var schedule = ScheduleSettings()
    /// The Polygon client and the cluster-wide request budget (the API key from the environment).
    var polygon = PolygonSettings()
    /// `market_data:` (MarketDataTasks).
    var marketData = MarketDataSettings()
    /// Backups: folder (`CLOSEBELL_BACKUP_DIR` wins), rotation and programs.
    var backup = BackupSettings(directory: BackupSettings.defaultDirectory)
    /// `retention:` (MaintenanceTasks, like `vacuum:`, `compress:`, `table_sizes:` and `schedule:`).
    var retention = RetentionSettings()
    /// `vacuum:`.
    var vacuum = VacuumSettings()
    /// `compress:`.
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
        alerts = try root.decode("alerts", or: alerts)
        try root.finish()
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
