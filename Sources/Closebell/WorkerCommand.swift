import ArgumentParser
import Foundation
import HTTPClient
import JobQueue
import Operations
import Logging

/// `closebell worker`: drains the queue until SIGTERM/SIGINT.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Claim and run jobs from maintenance_jobs until SIGTERM/SIGINT.",
        discussion: """
            Logs one JSON object per line on stderr (text on a terminal). Exit status: 0 after a
            clean drain; 64 bad flags; 69 the database cannot be reached at start; 78 a
            configuration error (file, CLOSEBELL_* variable or secret file).
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var settings: WorkerOptions

    func run() async throws {
        LogSetup.bootstrap(format: settings.logFormat, level: settings.logLevel)
        let logger = Logger(label: "closebell.worker")
        let environment = try RuntimeEnvironment.load(configPath: settings.config, conninfo: database.conninfo)
        // A database that cannot be reached at start ends the worker with 69 (EX_UNAVAILABLE):
        // systemd restarts it; a configuration error (78) above stops the unit instead.
        try await database.checkReachable()
        let config = environment.config
        let workerConfiguration = try settings.workerConfiguration(base: config.worker)
        // The scheduler's and the alert loop's connections notice a dead peer like the worker's.
        let periodicConninfo = (try? workerConfiguration.keepalive.applied(to: database.conninfo)) ?? database.conninfo
        var periodic = environment.periodicWork(conninfo: periodicConninfo, schedule: settings.schedule)
        if config.alerts.webhookURL != nil {
            let webhook = HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: 5, timeout: config.alerts.timeoutSeconds))
            periodic.append(AlertNotifier.periodicWork(conninfo: periodicConninfo, settings: config.alerts, http: webhook))
        }
        let worker = Worker(
            conninfo: database.conninfo, registry: environment.registry(),
            configuration: workerConfiguration, logger: logger, periodic: periodic)
        var endpoint = config.http
        if let http = settings.http { endpoint.listen = http }
        let polygon = environment.polygon
        let server = try OperationsServer.start(
            settings: endpoint, worker: worker, conninfo: database.conninfo, logger: logger,
            options: OperationsServerOptions(
                backupDirectory: config.backup.directory, databaseTimeoutSeconds: endpoint.databaseTimeoutSeconds,
                apiRequests: {
                    let s = polygon.statistics
                    let other = max(0, s.requests - s.rateLimitedResponses - s.serverErrorResponses - s.transportFailures)
                    return ["429": s.rateLimitedResponses, "5xx": s.serverErrorResponses, "error": s.transportFailures, "other": other]
                }))
        defer { server?.stop() }
        // The first SIGTERM/SIGINT drains within the grace period; a second one stops at once.
        let signals = SignalTrap { signal in
            logger.info("signal_received", metadata: ["signal": "\(signal)"])
            worker.requestStop()
        }
        defer { signals.cancel() }
        try await worker.run()
    }
}

/// Worker flags; each overrides the config file's `worker:` section, which overrides defaults.
/// A flag is named after its key (`--lease-seconds` for `lease_seconds`).
struct WorkerOptions: ParsableArguments {
    @Option(help: "YAML config file (default: $CLOSEBELL_CONFIG).")
    var config: String?
    @Option(help: "Queue to drain (default: default).")
    var queue: String?
    @Option(help: "Jobs run at once (default: 4).")
    var concurrency: Int?
    @Option(name: .customLong("claim-batch-size"), help: "Most jobs claimed per statement (default: 64).")
    var claimBatchSize: Int?
    @Option(name: .customLong("lease-seconds"), help: "Lease of a claimed job in seconds; a dead worker's jobs return after it (default: 60).")
    var leaseSeconds: Double?
    @Option(name: .customLong("heartbeat-seconds"), help: "Heartbeat interval in seconds (default: a quarter of the lease).")
    var heartbeatSeconds: Double?
    @Option(name: .customLong("poll-seconds"), help: "Fallback polling interval in seconds when no NOTIFY arrives (default: 5).")
    var pollSeconds: Double?
    @Option(name: .customLong("rescue-interval-seconds"), help: "Seconds between rescues of lapsed leases (default: 10).")
    var rescueIntervalSeconds: Double?
    @Option(name: .customLong("grace-seconds"), help: "Seconds running jobs get to finish after SIGTERM before they are released (default: 30).")
    var graceSeconds: Double?
    @Option(name: .customLong("stop-wait-seconds"), help: "Seconds a stopped task gets to end before it is left to its lease (default: 10).")
    var stopWaitSeconds: Double?
    @Option(name: .customLong("retry-base-seconds"), help: "First retry delay in seconds, doubling per attempt with jitter (default: 5).")
    var retryBaseSeconds: Double?
    @Option(name: .customLong("retry-max-seconds"), help: "Longest retry delay in seconds (default: 3600).")
    var retryMaxSeconds: Double?
    @Option(name: .customLong("prune-after-days"), help: "Age in days after which finished jobs are deleted (default: 30).")
    var pruneAfterDays: Double?
    @Option(name: .customLong("exit-when-idle"), help: "Exit after the queue has had nothing due for this many seconds.")
    var exitWhenIdle: Double?
    @Option(name: .customLong("time-limit"), parsing: .singleValue,
            help: "Longest run of one attempt, TASK=SECONDS or SECONDS for every task without its own (repeatable; default: backup=21600, others 3600).")
    var timeLimits: [String] = []
    // The flags' names before they were named after the config keys; still accepted, not shown.
    @Option(name: .customLong("claim-batch"), help: .hidden) var claimBatch: Int?
    @Option(name: .customLong("lease"), help: .hidden) var lease: Double?
    @Option(name: .customLong("heartbeat"), help: .hidden) var heartbeat: Double?
    @Option(name: .customLong("poll"), help: .hidden) var poll: Double?
    @Option(name: .customLong("rescue-interval"), help: .hidden) var rescueInterval: Double?
    @Option(name: .customLong("grace"), help: .hidden) var grace: Double?
    @Option(name: .customLong("stop-wait"), help: .hidden) var stopWait: Double?
    @Option(name: .customLong("retry-base"), help: .hidden) var retryBase: Double?
    @Option(name: .customLong("retry-max"), help: .hidden) var retryMax: Double?
    @Option(name: .customLong("prune-after"), help: .hidden) var pruneAfter: Double?
    @Option(help: "Serve the dashboard (/), /livez, /readyz, /health, /status, /metrics and the token-guarded actions on HOST:PORT (e.g. 127.0.0.1:8008; default: the config file's http.listen, else off).")
    var http: String?
    @Flag(help: "Also enqueue due daily/weekly/monthly cycles (safe with many workers).")
    var schedule = false
    @Option(name: .customLong("log-format"), help: "json or text (default: text on a terminal, json otherwise).")
    var logFormat: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error (default: info).")
    var logLevel: String?

    /// Each flag named after its `worker:` key with the old name it replaced (hidden alias).
    private var renamed: [(key: String, old: String, given: Bool, alias: Bool)] {
        [("claim-batch-size", "claim-batch", claimBatchSize != nil, claimBatch != nil),
         ("lease-seconds", "lease", leaseSeconds != nil, lease != nil),
         ("heartbeat-seconds", "heartbeat", heartbeatSeconds != nil, heartbeat != nil),
         ("poll-seconds", "poll", pollSeconds != nil, poll != nil),
         ("rescue-interval-seconds", "rescue-interval", rescueIntervalSeconds != nil, rescueInterval != nil),
         ("grace-seconds", "grace", graceSeconds != nil, grace != nil),
         ("stop-wait-seconds", "stop-wait", stopWaitSeconds != nil, stopWait != nil),
         ("retry-base-seconds", "retry-base", retryBaseSeconds != nil, retryBase != nil),
         ("retry-max-seconds", "retry-max", retryMaxSeconds != nil, retryMax != nil),
         ("prune-after-days", "prune-after", pruneAfterDays != nil, pruneAfter != nil)]
    }

    func validate() throws {
        if let both = renamed.first(where: { $0.given && $0.alias }) {
            throw ValidationError("--\(both.key) and --\(both.old) are the same flag (--\(both.old) is its old name); give one")
        }
        if let logFormat, !["json", "text"].contains(logFormat) { throw ValidationError("--log-format must be json or text") }
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        if let http {
            let parts = http.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count >= 2, let port = Int(parts.last!), (0...65_535).contains(port) else {
                throw ValidationError("--http must be HOST:PORT, e.g. 127.0.0.1:8008")
            }
        }
    }

    /// The configuration: defaults, then the file's values (`base`), then these flags.
    func workerConfiguration(base: WorkerConfiguration) throws -> WorkerConfiguration {
        var c = base
        if let queue { c.queue = queue }
        if let concurrency { c.concurrency = concurrency }
        if let v = leaseSeconds ?? lease { c.leaseSeconds = v }
        if let v = heartbeatSeconds ?? heartbeat { c.heartbeatSeconds = v }
        if let v = pollSeconds ?? poll { c.pollSeconds = v }
        if let v = rescueIntervalSeconds ?? rescueInterval { c.rescueSeconds = v }
        if let v = graceSeconds ?? grace { c.graceSeconds = v }
        if let v = retryBaseSeconds ?? retryBase { c.retryBaseSeconds = v }
        if let v = retryMaxSeconds ?? retryMax { c.retryMaxSeconds = v }
        if let v = pruneAfterDays ?? pruneAfter { c.pruneAfterSeconds = v * 86_400 }
        if let v = claimBatchSize ?? claimBatch { c.claimBatchSize = v }
        if let exitWhenIdle { c.exitWhenIdleSeconds = exitWhenIdle }
        if let v = stopWaitSeconds ?? stopWait { c.stopWaitSeconds = v }
        for entry in timeLimits {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard let seconds = Double(parts.last ?? ""), seconds > 0, parts.count == 1 || !parts[0].isEmpty else {
                throw ValidationError("--time-limit must be TASK=SECONDS or SECONDS with SECONDS > 0, got \(entry)")
            }
            if parts.count == 1 { c.defaultTimeLimitSeconds = seconds } else { c.timeLimits[parts[0]] = seconds }
        }
        do {
            try c.validate()
        } catch let error as WorkerConfigurationError {
            throw ValidationError(error.description)
        }
        return c
    }
}

/// Calls a handler on SIGTERM and SIGINT (the default actions are disabled meanwhile).
final class SignalTrap {
    private let sources: [any DispatchSourceSignal]

    init(_ handler: @escaping @Sendable (String) -> Void) {
        var sources: [any DispatchSourceSignal] = []
        for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(name) }
            source.resume()
            sources.append(source)
        }
        self.sources = sources
    }

    func cancel() { sources.forEach { $0.cancel() } }
}
