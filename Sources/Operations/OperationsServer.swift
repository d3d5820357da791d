import Backup
import Foundation
import Toolkit
import HTTPServer
import JobQueue
import Logging
import PostgresClient

/// Optional inputs of the operations endpoint.
public struct OperationsServerOptions: Sendable {
    /// The backup directory; when set, `/metrics` and the dashboard report its backups and its
    /// filesystem's free space.
    public var backupDirectory: URL?
    /// Seconds allowed to connect to the database and for each statement of an endpoint
    /// (`connect_timeout` and `statement_timeout`). Default 3.
    public var databaseTimeoutSeconds: Int
    /// API requests by HTTP status (`"200"`, `"429"`, or `"error"` for transport failures),
    /// counted since the process started; fed by the lead from the Polygon client's statistics.
    public var apiRequests: (@Sendable () -> [String: Int])?
    /// Most running jobs listed by `/status` and the dashboard. Default 100.
    public var runningJobsShown: Int
    /// Seconds the database snapshot is reused (a scrape storm costs one round of queries per
    /// interval). Default 5.
    public var cacheSeconds: Double
    /// Runs of each cycle the dashboard shows. Default 3.
    public var runsPerCycle: Int
    /// Seconds a finished job must be old before the row counters add it (time for its
    /// completion to commit). Default 10.
    public var counterLagSeconds: Double
    /// Seconds between the dashboard's refreshes. Default 5.
    public var dashboardRefreshSeconds: Double
    /// Limits of the HTTP server (connections, deadlines, threads); body limits are set per route.
    public var server: HTTPServerOptions

    /// Creates options; every value has a default.
    public init(backupDirectory: URL? = nil, databaseTimeoutSeconds: Int = 3,
                apiRequests: (@Sendable () -> [String: Int])? = nil, runningJobsShown: Int = 100,
                cacheSeconds: Double = 5, runsPerCycle: Int = 3, counterLagSeconds: Double = 10, dashboardRefreshSeconds: Double = 5,
                server: HTTPServerOptions = HTTPServerOptions(maxConnections: 256, handlerThreads: 8)) {
        self.backupDirectory = backupDirectory
        self.databaseTimeoutSeconds = databaseTimeoutSeconds
        self.apiRequests = apiRequests
        self.runningJobsShown = runningJobsShown
        self.cacheSeconds = cacheSeconds
        self.runsPerCycle = runsPerCycle
        self.counterLagSeconds = counterLagSeconds
        self.dashboardRefreshSeconds = dashboardRefreshSeconds
        self.server = server
    }
}

/// The worker's HTTP endpoint: the dashboard at `GET /`, `GET /livez`, `GET /readyz`,
/// `GET /health`, `GET /status`, `GET /metrics`, and the token-guarded actions
/// `POST /trigger?cycle=NAME`, `POST /jobs/ID/retry` and `POST /jobs/ID/cancel`.
///
/// Handlers run on the HTTP server's handler threads and query the database through a
/// `DatabaseLink` of their own (blocking calls, short timeouts, reconnecting after a failure),
/// so they never touch the worker's connections or Swift's cooperative pool. What they read is cached
/// for `cacheSeconds`.
public final class OperationsServer: Sendable {
    /// The underlying HTTP server (its `port` is the bound one when started on port 0).
    public let http: HTTPServer
    private let database: DatabaseLink
    private let cache: SnapshotCache<OperationsSnapshot>

    /// `http://host:port` of the endpoint.
    public var baseURL: URL { http.baseURL }

    /// Rounds of database queries run for the snapshot so far (one per cache interval at most).
    public var snapshotLoads: Int { cache.loadCount }

    private init(http: HTTPServer, database: DatabaseLink, cache: SnapshotCache<OperationsSnapshot>) {
        self.http = http
        self.database = database
        self.cache = cache
    }

    /// Starts serving on `host:port` (port 0 picks a free port).
    ///
    /// - Parameters:
    ///   - worker: the worker whose health and statistics are reported.
    ///   - conninfo: the queue's database (URL, key=value, or nil/empty for `PG*` defaults).
    ///   - triggerToken: the bearer token the actions require; nil or empty disables them (403).
    ///   - logger: where actions are logged (never the token).
    public static func start(host: String = "127.0.0.1", port: Int, worker: Worker, conninfo: String?, triggerToken: String?,
                             logger: Logger, options: OperationsServerOptions = OperationsServerOptions()) throws -> OperationsServer {
        guard (0...65_535).contains(port) else { throw OperationsError.invalidListenAddress("\(host):\(port)", reason: "port must be 0 to 65535") }
        let database = endpointLink(conninfo: conninfo, timeoutSeconds: options.databaseTimeoutSeconds)
        let cache = SnapshotCache<OperationsSnapshot>(ttl: options.cacheSeconds)
        let serverRef = ServerReference()
        let routes = Routes(worker: worker, database: database, cache: cache, ping: SnapshotCache<Void>(ttl: options.cacheSeconds),
                            counters: RowCounters(lagSeconds: options.counterLagSeconds),
                            token: triggerToken.flatMap { $0.isEmpty ? nil : $0 }, logger: logger, options: options, server: serverRef)
        var serverOptions = options.server
        serverOptions.bodyLimit = { method, _ in method == "POST" ? 4096 : 0 }
        // Liveness is answered on the event loop: it needs no database and no handler thread.
        serverOptions.inlineHandler = { request in
            request.path == "/livez" && (request.method == "GET" || request.method == "HEAD") ? routes.livez() : nil
        }
        let server = try HTTPServer.start(host: host, port: UInt16(port), options: serverOptions) { request in routes.handle(request) }
        serverRef.set(server)
        logger.info("operations_http_started", metadata: [
            "listen": "\(host):\(server.port)", "trigger": "\(triggerToken?.isEmpty == false ? "enabled" : "disabled")",
            "max_connections": "\(server.maxConnections)",
        ])
        return OperationsServer(http: server, database: database, cache: cache)
    }

    /// Starts serving on `HOST:PORT` as given to `--http` (`127.0.0.1:8008`, `[::1]:8008`, `:8008` for loopback).
    public static func start(listen: String, worker: Worker, conninfo: String?, triggerToken: String?,
                             logger: Logger, options: OperationsServerOptions = OperationsServerOptions()) throws -> OperationsServer {
        let (host, port) = try parseListen(listen)
        return try start(host: host, port: port, worker: worker, conninfo: conninfo, triggerToken: triggerToken, logger: logger, options: options)
    }

    /// The one call for `closebell worker`: validates `settings` and starts the endpoint on
    /// `settings.listen`, or returns nil when it is not set. The database timeout, cache and
    /// server limits are taken from `settings`.
    public static func start(settings: HTTPEndpointSettings, worker: Worker, conninfo: String?, logger: Logger,
                             options: OperationsServerOptions = OperationsServerOptions()) throws -> OperationsServer? {
        try settings.validate()
        guard let listen = settings.listen else { return nil }
        var options = options
        options.databaseTimeoutSeconds = settings.databaseTimeoutSeconds
        options.cacheSeconds = settings.cacheSeconds
        options.dashboardRefreshSeconds = settings.dashboardRefreshSeconds
        options.server.maxConnections = settings.maxConnections
        options.server.headerTimeout = settings.headerTimeoutSeconds
        options.server.idleTimeout = settings.idleTimeoutSeconds
        options.server.handlerThreads = settings.handlerThreads
        return try start(listen: listen, worker: worker, conninfo: conninfo, triggerToken: settings.triggerToken, logger: logger, options: options)
    }

    /// Splits `HOST:PORT`; an empty host means 127.0.0.1. Throws `OperationsError.invalidListenAddress`.
    public static func parseListen(_ text: String) throws -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":") else {
            throw OperationsError.invalidListenAddress(text, reason: "expected HOST:PORT, e.g. 127.0.0.1:8008")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = "127.0.0.1" }
        guard let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else {
            throw OperationsError.invalidListenAddress(text, reason: "the port must be a number from 0 to 65535")
        }
        return (host, port)
    }

    /// The endpoint's connection: opened on first use, its connect, `statement_timeout` and TCP
    /// timeouts all `timeoutSeconds` (they replace the connection string's own, so an endpoint
    /// answers within them), reopened after a failure; a read that failed on an old connection
    /// (the server may have restarted since) runs once more on a new one.
    static func endpointLink(conninfo: String?, timeoutSeconds: Int) -> DatabaseLink {
        let seconds = max(1, timeoutSeconds)
        let keepalive = ConnectionKeepalive(idleSeconds: seconds, intervalSeconds: 1, count: seconds, userTimeoutSeconds: seconds,
                                            connectTimeoutSeconds: seconds)
        return DatabaseLink(
            conninfo: conninfo, applicationName: "closebell operations",
            policy: DatabaseLink.Policy(keepalive: keepalive, keepaliveReplaces: true, retryOnStaleConnection: true)
        ) { session in
            _ = try session.execute("SET statement_timeout = '\(seconds)s'")
        }
    }

    /// Stops the server and closes its database connection.
    public func stop() {
        http.stop()
        database.closeBlocking()
    }
}

/// Errors of the operations module, carrying what the operator needs to fix them.
public enum OperationsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `--http` / `http.listen` is not `HOST:PORT`.
    case invalidListenAddress(String, reason: String)
    /// A setting is out of range (named by its config key).
    case invalidSetting(key: String, reason: String)
    /// The alert webhook answered with a non-2xx status.
    case webhookRejected(status: Int, host: String)
    /// The alert webhook could not be reached (libcurl's code, when there is one).
    case webhookUnreachable(host: String, curlCode: Int?)
    /// The report period is not `day` or `week`.
    case invalidPeriod(String)
    /// The report could not be written.
    case cannotWrite(path: String, reason: String)

    /// A one-line description (never containing a secret: webhook URLs are reduced to their host).
    public var description: String {
        switch self {
        case .invalidListenAddress(let text, let reason): return "invalid listen address \"\(text)\": \(reason)"
        case .invalidSetting(let key, let reason): return "invalid setting \(key): \(reason)"
        case .webhookRejected(let status, let host): return "alert webhook at \(host) answered HTTP \(status)"
        case .webhookUnreachable(let host, let code): return "alert webhook at \(host) unreachable (curl code \(code.map { String($0) } ?? "?"))"
        case .invalidPeriod(let text): return "invalid report period \"\(text)\": expected day or week"
        case .cannotWrite(let path, let reason): return "cannot write \(path): \(reason)"
        }
    }
}

/// The request router and the endpoints.
struct Routes: Sendable {
    let worker: Worker
    let database: DatabaseLink
    let cache: SnapshotCache<OperationsSnapshot>
    /// The readiness probe's last `SELECT 1`, reused like the snapshot.
    let ping: SnapshotCache<Void>
    let counters: RowCounters
    let token: String?
    let logger: Logger
    let options: OperationsServerOptions
    let server: ServerReference

    static let endpoints = [
        "GET /", "GET /livez", "GET /readyz", "GET /health", "GET /status", "GET /metrics",
        "POST /trigger?cycle=NAME[&period=YYYY-MM-DD][&force=true]", "POST /jobs/ID/retry", "POST /jobs/ID/cancel",
    ]

    func handle(_ request: HTTPServerRequest) -> HTTPServerResponse {
        switch request.path {
        case "/", "/livez", "/readyz", "/health", "/status", "/metrics":
            guard request.method == "GET" || request.method == "HEAD" else { return methodNotAllowed("GET") }
            switch request.path {
            case "/": return dashboard(request)
            case "/livez": return livez()
            case "/readyz", "/health": return readiness()
            case "/status": return status()
            default: return metrics()
            }
        case "/trigger":
            guard request.method == "POST" else { return methodNotAllowed("POST") }
            return trigger(request)
        default:
            let parts = request.path.split(separator: "/", omittingEmptySubsequences: false)
            if parts.count == 4, parts[1] == "jobs", let id = Int64(parts[2]), parts[3] == "retry" || parts[3] == "cancel" {
                guard request.method == "POST" else { return methodNotAllowed("POST") }
                return jobAction(request, id: id, action: String(parts[3]))
            }
            return json(["error": "not found", "endpoints": Self.endpoints], status: 404)
        }
    }

    /// The cached snapshot (loaded when older than the cache interval).
    func snapshot() -> (result: Result<OperationsSnapshot, any Error>, at: Date) {
        let limit = options.runningJobsShown, runs = options.runsPerCycle, counters = self.counters
        return cache.get {
            try database.runBlocking { try OperationsSnapshot.read($0, runningLimit: limit, runsPerCycle: runs, counters: counters) }
        }
    }

    // MARK: - /livez, /readyz, /health

    /// 200 while the process answers and the worker's loops run, whatever the database does:
    /// an orchestrator restarting workers during a database outage would gain nothing.
    func livez() -> HTTPServerResponse {
        let alive = worker.isHealthy
        return json(["status": alive ? "ok" : "stopped", "worker_id": worker.configuration.workerID,
                     "loops_alive": worker.stats.snapshot().loopsAlive], status: alive ? 200 : 503)
    }

    /// 200 when the database answers `SELECT 1` (checked at most once per cache interval) and
    /// the worker's loops run, else 503 with reasons.
    func readiness() -> HTTPServerResponse {
        var reasons: [String] = []
        var databaseState = "ok"
        let probe = ping.get { try database.runBlocking { _ = try $0.query("SELECT 1") } }
        if case .failure(let error) = probe.result {
            databaseState = "unavailable"
            reasons.append("database: \(error)")
        }
        let workerHealthy = worker.isHealthy
        if !workerHealthy { reasons.append("worker: loops are not running (stopped or never started)") }
        let ok = reasons.isEmpty
        return json([
            "status": ok ? "ok" : "unavailable", "database": databaseState, "worker": workerHealthy ? "ok" : "stopped",
            "worker_id": worker.configuration.workerID, "reasons": reasons,
        ], status: ok ? 200 : 503)
    }

    // MARK: - /status

    func status() -> HTTPServerResponse {
        var body: [String: Any] = ["worker": workerJSON(), "time": OpsFormat.iso(Date())]
        let (result, at) = snapshot()
        body["snapshot_at"] = OpsFormat.iso(at)
        switch result {
        case .success(let snapshot):
            var byState: [String: Int] = [:]
            var byTask: [String: [String: Int]] = [:]
            for entry in snapshot.queue.depth {
                byState[entry.state, default: 0] += entry.count
                byTask[entry.task, default: [:]][entry.state] = entry.count
            }
            body["database"] = ["status": "ok", "size_bytes": snapshot.databaseBytes]
            body["queue"] = ["by_state": byState, "by_task": byTask, "oldest_waiting_seconds": snapshot.queue.oldestWaitingSeconds]
            body["running"] = snapshot.queue.running
            body["cycles"] = snapshot.queue.cyclesJSON
            return json(body)
        case .failure(let error):
            body["database"] = ["status": "unavailable", "error": "\(error)"]
            return json(body, status: 503)
        }
    }

    func workerJSON() -> [String: Any] {
        let s = worker.stats.snapshot()
        var value: [String: Any] = [
            "id": worker.configuration.workerID, "healthy": worker.isHealthy, "loops_alive": s.loopsAlive,
            "jobs_finished": s.jobsFinished, "finished": s.finished, "started_at": OpsFormat.iso(s.startedAt),
            "uptime_seconds": Date().timeIntervalSince(s.startedAt), "concurrency": worker.configuration.concurrency,
            "queue": worker.configuration.queue,
        ]
        if let error = s.lastDatabaseError { value["last_database_error"] = error }
        if let beat = s.lastHeartbeat { value["last_heartbeat"] = OpsFormat.iso(beat) }
        return value
    }

    // MARK: - /metrics

    func metrics() -> HTTPServerResponse {
        let snapshot = try? snapshot().result.get()
        let text = MetricsRenderer.render(
            stats: worker.stats.snapshot(), workerUp: worker.isHealthy, snapshot: snapshot,
            apiRequests: options.apiRequests?(), backups: options.backupDirectory.map { BackupFiles.scan($0) },
            filesystem: options.backupDirectory.flatMap { BackupFiles.filesystem(of: $0) }, http: server.statistics)
        return HTTPServerResponse(status: 200, headers: [("Content-Type", PrometheusText.contentType)], body: Data(text.utf8))
    }

    // MARK: - GET /

    func dashboard(_ request: HTTPServerRequest) -> HTTPServerResponse {
        let (result, at) = snapshot()
        var snapshotError: String?
        if case .failure(let error) = result { snapshotError = "database unreachable: \(error)" }
        let context = DashboardPage.Context(
            workerID: worker.configuration.workerID, workerHealthy: worker.isHealthy, refreshSeconds: options.dashboardRefreshSeconds,
            actionsEnabled: token != nil, snapshot: try? result.get(), snapshotError: snapshotError, snapshotAt: at,
            backups: options.backupDirectory.map { BackupFiles.scan($0) }, backupDirectory: options.backupDirectory?.path,
            filesystem: options.backupDirectory.flatMap { BackupFiles.filesystem(of: $0) }, now: Date())
        let nonce = UUID().uuidString.replacingOccurrences(of: "-", with: "")
        let html = request.query("part") == "main" ? DashboardPage.main(context) : DashboardPage.page(context, nonce: nonce)
        return HTTPServerResponse(status: 200, headers: [
            ("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"),
            ("Content-Security-Policy", "default-src 'none'; script-src 'nonce-\(nonce)'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"),
        ], body: Data(html.utf8))
    }

    // MARK: - Actions

    /// nil when the request carries the trigger token, else the refusal (403 without a
    /// configured token, 401 for a missing or wrong one). Never logs the token.
    func refuseUnauthorized(_ request: HTTPServerRequest, action: String) -> HTTPServerResponse? {
        guard let token else {
            logger.warning("action_refused", metadata: ["action": "\(action)", "reason": "no trigger token configured"])
            return json(["error": "actions are disabled: set CLOSEBELL_TRIGGER_TOKEN or http.trigger_token"], status: 403)
        }
        let header = request.header("authorization") ?? ""
        let prefix = "bearer "
        let presented = header.lowercased().hasPrefix(prefix) ? String(header.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces) : ""
        guard !presented.isEmpty, Self.constantTimeEquals(presented, token) else {
            logger.warning("action_refused", metadata: ["action": "\(action)", "reason": "\(header.isEmpty ? "missing" : "wrong") bearer token"])
            return HTTPServerResponse(status: 401, headers: [("Content-Type", "application/json"), ("WWW-Authenticate", "Bearer")],
                                      body: OpsFormat.jsonData(["error": "a valid Authorization: Bearer token is required"]))
        }
        return nil
    }

    /// `POST /jobs/ID/retry` (failed or cancelled → available, attempts reset, errors kept) and
    /// `POST /jobs/ID/cancel` (available or running → cancelled; a running job stops within a heartbeat).
    func jobAction(_ request: HTTPServerRequest, id: Int64, action: String) -> HTTPServerResponse {
        if let refusal = refuseUnauthorized(request, action: action) { return refusal }
        let wanted = action == "retry" ? "failed or cancelled" : "available or running"
        do {
            let changes = try database.runBlocking { session in
                action == "retry" ? try QueueStore.retry(session, ids: [id]) : try QueueStore.cancel(session, ids: [id])
            }
            let outcome = (changed: changes.first?.changed ?? false, state: changes.first?.state.rawValue)
            cache.invalidate()
            if outcome.changed {
                logger.info("job_action", metadata: ["action": "\(action)", "job_id": "\(id)"])
                let message = action == "retry" ? "job \(id) is available again" : "job \(id) cancelled"
                return json(["job_id": NSNumber(value: id), "action": action, "message": message])
            }
            guard let state = outcome.state else { return json(["error": "no job \(id)"], status: 404) }
            return json(["error": "job \(id) is \(state), not \(wanted); nothing changed", "state": state], status: 409)
        } catch {
            logger.error("job_action_failed", metadata: ["action": "\(action)", "job_id": "\(id)", "error": "\(error)"])
            return json(["error": "\(error)"], status: 503)
        }
    }

    // MARK: - /trigger

    func trigger(_ request: HTTPServerRequest) -> HTTPServerResponse {
        if let refusal = refuseUnauthorized(request, action: "trigger") { return refusal }
        guard let cycle = request.query("cycle"), !cycle.isEmpty else {
            return json(["error": "missing query parameter cycle (POST /trigger?cycle=daily)"], status: 400)
        }
        let period = request.query("period").flatMap { $0.isEmpty ? nil : $0 }
        if let period, !Self.isDate(period) {
            return json(["error": "period must be a date YYYY-MM-DD, got \(period)"], status: 400)
        }
        let forceText = request.query("force")?.lowercased() ?? "false"
        guard ["", "true", "false", "1", "0", "yes", "no"].contains(forceText) else {
            return json(["error": "force must be true or false, got \(forceText)"], status: 400)
        }
        let force = ["true", "1", "yes"].contains(forceText)
        do {
            let row = try database.runBlocking { session in
                try session.query("SELECT run_id, created, period::text AS period, note FROM maintenance_enqueue_cycle($1, $2::date, $3)",
                                  [cycle, period, force]).first
            }
            guard let row else { return json(["error": "maintenance_enqueue_cycle returned no row"], status: 500) }
            cache.invalidate()
            return triggerResponse(cycle: cycle, row: row)
        } catch let error as PostgresError where error.sqlState == "22023" {
            return json(["error": error.message, "hint": error.hint ?? ""], status: 404)
        } catch {
            logger.error("trigger_failed", metadata: ["cycle": "\(cycle)", "error": "\(error)"])
            return json(["error": "\(error)"], status: 503)
        }
    }

    /// Reads `maintenance_enqueue_cycle`'s result row (run_id, created, period, note) into the answer.
    func triggerResponse(cycle: String, row: PostgresRow) -> HTTPServerResponse {
        let runID: Int64? = try? row.decodeIfPresent("run_id")
        let created: Bool = (try? row.decodeIfPresent("created")) ?? false
        let note = row["note"] ?? ""
        logger.info("trigger_accepted", metadata: [
            "cycle": "\(cycle)", "run_id": "\(runID.map { String($0) } ?? "none")", "created": "\(created)", "note": "\(note)",
        ])
        var body: [String: Any] = ["cycle": cycle, "created": created, "period": row["period"] ?? NSNull(), "note": note]
        body["run_id"] = runID.map { NSNumber(value: $0) } ?? NSNull()
        body["message"] = created ? "cycle \(cycle) run \(runID.map { String($0) } ?? "?") enqueued" : (note.isEmpty ? "nothing enqueued" : note)
        return json(body)
    }

    static func isDate(_ text: String) -> Bool {
        let parts = text.split(separator: "-")
        return parts.count == 3 && parts[0].count == 4 && parts[1].count == 2 && parts[2].count == 2 && parts.allSatisfy { $0.allSatisfy(\.isNumber) }
    }

    /// Compares without an early exit, so the time taken does not reveal how many leading
    /// characters of a guess were right.
    static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference: UInt8 = x.count == y.count ? 0 : 1
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }

    // MARK: - Helpers

    private func methodNotAllowed(_ allowed: String) -> HTTPServerResponse {
        HTTPServerResponse(status: 405, headers: [("Content-Type", "application/json"), ("Allow", allowed)],
                           body: OpsFormat.jsonData(["error": "method not allowed; use \(allowed)"]))
    }

    private func json(_ value: [String: Any], status: Int = 200) -> HTTPServerResponse {
        .json(OpsFormat.jsonData(value), status: status)
    }
}

/// The HTTP server, once started, for the routes that report its statistics (the routes are
/// created before the server they serve).
final class ServerReference: Sendable {
    private let server = LockedBox<HTTPServer?>(nil)

    func set(_ value: HTTPServer) { server.set(value) }

    /// The server's counters, nil before it started.
    var statistics: HTTPServerStatistics? { server.value?.statistics }
}

/// Formatting shared by the endpoints and reports.
enum OpsFormat {
    /// ISO 8601 in UTC with milliseconds.
    static func iso(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// A SQL expression turning a timestamptz expression into ISO 8601 UTC text (NULL stays NULL).
    static func isoSQL(_ expression: String) -> String {
        "to_char((\(expression)) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    }

    /// Serializes a JSON object (sorted keys); values that cannot be serialized become strings.
    static func jsonData(_ value: [String: Any]) -> Data {
        (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{\"error\":\"could not encode the response\"}".utf8)
    }

    /// Parses JSON text (from a jsonb column) into a Foundation value; NSNull when absent.
    static func parse(_ text: String?) -> Any {
        guard let text, let value = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else {
            return NSNull()
        }
        return value
    }
}
