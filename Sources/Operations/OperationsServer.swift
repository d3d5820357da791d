import Foundation
import HTTPServer
import JobQueue
import Logging
import PostgresClient

/// Optional inputs of the operations endpoint.
public struct OperationsServerOptions: Sendable {
    /// The backup directory; when set, `/metrics` reports the newest backup's size and age.
    public var backupDirectory: URL?
    /// Seconds allowed to connect to the database and for each statement of an endpoint
    /// (`connect_timeout` and `statement_timeout`). Default 3.
    public var databaseTimeoutSeconds: Int
    /// API requests by HTTP status (`"200"`, `"429"`, or `"error"` for transport failures),
    /// counted since the process started; fed by the lead from the Polygon client's statistics.
    public var apiRequests: (@Sendable () -> [String: Int])?
    /// Most running jobs listed by `/status`. Default 100.
    public var runningJobsShown: Int

    /// Creates options; every value has a default.
    public init(backupDirectory: URL? = nil, databaseTimeoutSeconds: Int = 3,
                apiRequests: (@Sendable () -> [String: Int])? = nil, runningJobsShown: Int = 100) {
        self.backupDirectory = backupDirectory
        self.databaseTimeoutSeconds = databaseTimeoutSeconds
        self.apiRequests = apiRequests
        self.runningJobsShown = runningJobsShown
    }
}

/// The worker's HTTP endpoint: `GET /health`, `GET /status`, `GET /metrics` and
/// `POST /trigger?cycle=NAME`.
///
/// Handlers run on the HTTP server's dedicated connection threads and query the database
/// through one blocking connection of their own (short timeouts, reconnecting after a
/// failure), so they never touch the worker's connections or Swift's cooperative pool.
public final class OperationsServer: Sendable {
    /// The underlying HTTP server (its `port` is the bound one when started on port 0).
    public let http: HTTPServer
    private let database: BlockingDatabase

    /// `http://host:port` of the endpoint.
    public var baseURL: URL { http.baseURL }

    private init(http: HTTPServer, database: BlockingDatabase) {
        self.http = http
        self.database = database
    }

    /// Starts serving on `host:port` (port 0 picks a free port).
    ///
    /// - Parameters:
    ///   - worker: the worker whose health and statistics are reported.
    ///   - conninfo: the queue's database (URL, key=value, or nil/empty for `PG*` defaults).
    ///   - triggerToken: the bearer token `/trigger` requires; nil or empty disables `/trigger` (403).
    ///   - logger: where requests to `/trigger` are logged (never the token).
    public static func start(host: String = "127.0.0.1", port: Int, worker: Worker, conninfo: String?, triggerToken: String?,
                             logger: Logger, options: OperationsServerOptions = OperationsServerOptions()) throws -> OperationsServer {
        guard (0...65_535).contains(port) else { throw OperationsError.invalidListenAddress("\(host):\(port)", reason: "port must be 0 to 65535") }
        let database = BlockingDatabase(conninfo: conninfo, timeoutSeconds: options.databaseTimeoutSeconds)
        let routes = Routes(worker: worker, database: database, token: triggerToken.flatMap { $0.isEmpty ? nil : $0 },
                            logger: logger, options: options)
        let server = try HTTPServer.start(host: host, port: UInt16(port)) { request in routes.handle(request) }
        logger.info("operations_http_started", metadata: ["listen": "\(host):\(server.port)", "trigger": "\(triggerToken?.isEmpty == false ? "enabled" : "disabled")"])
        return OperationsServer(http: server, database: database)
    }

    /// Starts serving on `HOST:PORT` as given to `--http` (`127.0.0.1:8008`, `[::1]:8008`, `:8008` for loopback).
    public static func start(listen: String, worker: Worker, conninfo: String?, triggerToken: String?,
                             logger: Logger, options: OperationsServerOptions = OperationsServerOptions()) throws -> OperationsServer {
        let (host, port) = try parseListen(listen)
        return try start(host: host, port: port, worker: worker, conninfo: conninfo, triggerToken: triggerToken, logger: logger, options: options)
    }

    /// The one call for `closebell worker`: validates `settings` and starts the endpoint on
    /// `settings.listen`, or returns nil when it is not set. `options.databaseTimeoutSeconds`
    /// is taken from `settings`.
    public static func start(settings: HTTPEndpointSettings, worker: Worker, conninfo: String?, logger: Logger,
                             options: OperationsServerOptions = OperationsServerOptions()) throws -> OperationsServer? {
        try settings.validate()
        guard let listen = settings.listen else { return nil }
        var options = options
        options.databaseTimeoutSeconds = settings.databaseTimeoutSeconds
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

    /// Stops the server and closes its database connection.
    public func stop() {
        http.stop()
        database.close()
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
    let database: BlockingDatabase
    let token: String?
    let logger: Logger
    let options: OperationsServerOptions

    func handle(_ request: HTTPServerRequest) -> HTTPServerResponse {
        switch request.path {
        case "/health", "/status", "/metrics":
            guard request.method == "GET" else { return methodNotAllowed("GET") }
            if request.path == "/health" { return health() }
            if request.path == "/status" { return status() }
            return metrics()
        case "/trigger":
            guard request.method == "POST" else { return methodNotAllowed("POST") }
            return trigger(request)
        default:
            return json(["error": "not found", "endpoints": ["GET /health", "GET /status", "GET /metrics", "POST /trigger?cycle=NAME"]], status: 404)
        }
    }

    // MARK: - /health

    func health() -> HTTPServerResponse {
        var reasons: [String] = []
        var databaseState = "ok"
        do {
            _ = try database.withSession { try $0.query("SELECT 1") }
        } catch {
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
        do {
            let snapshot = try database.withSession { try QueueSnapshot.read($0, runningLimit: options.runningJobsShown) }
            var byState: [String: Int] = [:]
            var byTask: [String: [String: Int]] = [:]
            for entry in snapshot.depth {
                byState[entry.state, default: 0] += entry.count
                byTask[entry.task, default: [:]][entry.state] = entry.count
            }
            body["database"] = ["status": "ok"]
            body["queue"] = ["by_state": byState, "by_task": byTask, "oldest_waiting_seconds": snapshot.oldestWaitingSeconds]
            body["running"] = snapshot.running
            body["cycles"] = snapshot.cycles
            return json(body)
        } catch {
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
        let snapshot: QueueSnapshot?
        do {
            snapshot = try database.withSession { try QueueSnapshot.read($0, runningLimit: 0) }
        } catch {
            snapshot = nil
        }
        let text = MetricsRenderer.render(
            stats: worker.stats.snapshot(), workerUp: worker.isHealthy, queue: snapshot,
            apiRequests: options.apiRequests?(), backups: options.backupDirectory.map { BackupFiles.scan($0) })
        return HTTPServerResponse(status: 200, headers: [("Content-Type", PrometheusText.contentType)], body: Data(text.utf8))
    }

    // MARK: - /trigger

    func trigger(_ request: HTTPServerRequest) -> HTTPServerResponse {
        guard let token else {
            logger.warning("trigger_refused", metadata: ["reason": "no trigger token configured"])
            return json(["error": "the trigger endpoint is disabled: set CLOSEBELL_TRIGGER_TOKEN or http.trigger_token"], status: 403)
        }
        let header = request.header("authorization") ?? ""
        let prefix = "bearer "
        let presented = header.lowercased().hasPrefix(prefix) ? String(header.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces) : ""
        guard !presented.isEmpty, Self.constantTimeEquals(presented, token) else {
            logger.warning("trigger_refused", metadata: ["reason": "\(header.isEmpty ? "missing" : "wrong") bearer token"])
            return HTTPServerResponse(status: 401, headers: [("Content-Type", "application/json"), ("WWW-Authenticate", "Bearer")],
                                      body: OpsFormat.jsonData(["error": "a valid Authorization: Bearer token is required"]))
        }
        guard let cycle = request.query("cycle"), !cycle.isEmpty else {
            return json(["error": "missing query parameter cycle (POST /trigger?cycle=daily)"], status: 400)
        }
        do {
            let row = try database.withSession { session in
                try session.query("SELECT run_id, created, period::text AS period, note FROM maintenance_enqueue_cycle($1)", [cycle]).first
            }
            guard let row else { return json(["error": "maintenance_enqueue_cycle returned no row"], status: 500) }
            let runID: Int64? = try row.decodeIfPresent("run_id")
            let created: Bool = try row.decodeIfPresent("created") ?? false
            logger.info("trigger_accepted", metadata: [
                "cycle": "\(cycle)", "run_id": "\(runID.map { String($0) } ?? "none")", "created": "\(created)",
                "note": "\(row["note"] ?? "")",
            ])
            var body: [String: Any] = ["cycle": cycle, "created": created, "period": row["period"] ?? NSNull(), "note": row["note"] ?? ""]
            body["run_id"] = runID.map { NSNumber(value: $0) } ?? NSNull()
            return json(body)
        } catch let error as PostgresError where error.sqlState == "22023" {
            return json(["error": error.message, "hint": error.hint ?? ""], status: 404)
        } catch {
            logger.error("trigger_failed", metadata: ["cycle": "\(cycle)", "error": "\(error)"])
            return json(["error": "\(error)"], status: 503)
        }
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
