import Foundation
import JobQueue
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
final class ConfigSection {
    let file: String
    let path: String
    private let values: [String: Any]
    private var used: Set<String> = []

    init(file: String, path: String, values: [String: Any]) {
        self.file = file
        self.path = path
        self.values = values
    }

    private func key(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    private func raw(_ name: String) -> Any? {
        used.insert(name)
        guard let value = values[name], !(value is NSNull) else { return nil }
        return value
    }

    func fail(_ name: String, _ reason: String) -> ConfigError { ConfigError(file: file, key: key(name), reason: reason) }

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
        guard let value = raw(name) else { return nil }
        guard let text = value as? String else { throw fail(name, "expected text, got \(value)") }
        return text
    }

    func bool(_ name: String) throws -> Bool? {
        guard let value = raw(name) else { return nil }
        guard let flag = value as? Bool else { throw fail(name, "expected true or false, got \(value)") }
        return flag
    }

    func section(_ name: String) throws -> ConfigSection? {
        guard let value = raw(name) else { return nil }
        guard let mapping = value as? [String: Any] else { throw fail(name, "expected a mapping of keys") }
        return ConfigSection(file: file, path: key(name), values: mapping)
    }

    /// The raw mapping (for sections whose keys are data, like per-table windows).
    func mapping(_ name: String) throws -> [String: Any]? {
        guard let value = raw(name) else { return nil }
        guard let mapping = value as? [String: Any] else { throw fail(name, "expected a mapping of keys") }
        return mapping
    }

    /// Refuses keys that were never read.
    func finish() throws {
        if let unknown = values.keys.sorted().first(where: { !used.contains($0) }) {
            throw ConfigError(file: file, key: key(unknown), reason: "unknown key (misspelt? see the README's configuration table)")
        }
    }
}

/// The whole config file, parsed into each module's settings. Every key has a default, so an
/// absent file is the same as an empty one.
struct ClosebellConfig {
    var worker = WorkerConfiguration()
    /// Seconds between the scheduler's checks for due cycles.
    var scheduleIntervalSeconds = 60.0

    /// Loads `path`, or `$CLOSEBELL_CONFIG`, or nothing (defaults).
    static func load(path: String?) throws -> ClosebellConfig {
        let chosen = path ?? ProcessInfo.processInfo.environment["CLOSEBELL_CONFIG"]
        guard let chosen, !chosen.isEmpty else { return ClosebellConfig() }
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
        if parsed == nil { return ClosebellConfig() }
        guard let root = parsed as? [String: Any] else {
            throw ConfigError(file: chosen, key: "(file)", reason: "the top level must be a mapping of sections")
        }
        return try ClosebellConfig(ConfigSection(file: chosen, path: "", values: root))
    }

    init() {}

    init(_ root: ConfigSection) throws {
        if let section = try root.section("worker") {
            var w = WorkerConfiguration()
            if let v = try section.string("queue") { w.queue = v }
            if let v = try section.int("concurrency", min: 1) { w.concurrency = v }
            if let v = try section.int("claim_batch_size", min: 1) { w.claimBatchSize = v }
            if let v = try section.double("lease_seconds", min: 0.1) { w.leaseSeconds = v }
            if let v = try section.double("heartbeat_seconds", min: 0.01) { w.heartbeatSeconds = v }
            if let v = try section.double("poll_seconds", min: 0.01) { w.pollSeconds = v }
            if let v = try section.double("rescue_interval_seconds", min: 0.01) { w.rescueSeconds = v }
            if let v = try section.double("grace_seconds", min: 0) { w.graceSeconds = v }
            if let v = try section.double("retry_base_seconds", min: 0) { w.retryBaseSeconds = v }
            if let v = try section.double("retry_max_seconds", min: 0) { w.retryMaxSeconds = v }
            if let v = try section.double("prune_after_days", min: 0) { w.pruneAfterSeconds = v * 86_400 }
            if let v = try section.double("prune_interval_seconds", min: 1) { w.pruneIntervalSeconds = v }
            if let v = try section.double("schedule_interval_seconds", min: 1) { scheduleIntervalSeconds = v }
            try section.finish()
            do {
                try w.validate()
            } catch let error as WorkerConfigurationError {
                throw ConfigError(file: root.file, key: "worker.\(error.key)", reason: error.reason)
            }
            worker = w
        }
        try root.finish()
    }
}

/// What the subcommands need from configuration: the parsed file, the task registry and
/// the periodic work of `worker --schedule`.
struct RuntimeEnvironment {
    let config: ClosebellConfig

    static func load(configPath: String?, logger: Any? = nil) throws -> RuntimeEnvironment {
        RuntimeEnvironment(config: try ClosebellConfig.load(path: configPath))
    }

    /// Every task this build runs.
    func registry() -> TaskRegistry {
        TaskRegistry([NoopTask()])
    }

    /// Periodic work for the worker (the cycle scheduler when `schedule` is set).
    func periodicWork(conninfo: String, schedule: Bool) -> [PeriodicWork] {
        []
    }
}
