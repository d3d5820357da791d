import Foundation
import Toolkit

/// A PostgreSQL connection that owns a dedicated thread.
///
/// libpq blocks; Swift's cooperative pool has one thread per core. So every libpq call made
/// through this type runs on the connection's own thread, and async callers suspend until it
/// is done. Use `withSession` to run several statements (a transaction) in one hop.
///
/// Swift task cancellation reaches the server: cancelling the task that awaits `withSession`
/// (or `query`, `execute`) sends libpq's cancel request for the statement that call is running,
/// and no further statement of that call is sent. Other callers sharing the connection are
/// never affected (see `StatementGate`).
public final class PostgresConnection: Sendable {
    private let thread: ThreadExecutor
    private let box: SessionBox
    private let gate: StatementGate
    /// The server's process id for this connection (useful in logs and `pg_stat_activity`).
    public let backendPID: Int32
    /// The server version as an integer (150018 for 15.18).
    public let serverVersion: Int
    /// The name of the connected database.
    public let databaseName: String
    /// Cancels the statement running on this connection, from any thread.
    public let canceller: PostgresCanceller?

    private init(thread: ThreadExecutor, box: SessionBox, gate: StatementGate) {
        self.thread = thread
        self.box = box
        self.gate = gate
        self.backendPID = box.session.backendPID
        self.serverVersion = box.session.serverVersion
        self.databaseName = box.session.databaseName
        self.canceller = gate.canceller
    }

    /// Opens a connection on a new thread. `conninfo` is a URL or `key=value` string; nil or
    /// empty uses libpq's `PG*` variables, service file and `.pgpass`.
    public static func connect(_ conninfo: String?, applicationName: String = "closebell") async throws -> PostgresConnection {
        let thread = ThreadExecutor(name: "closebell-pq")
        do {
            let (box, gate) = try await thread.run { try open(conninfo, applicationName: applicationName) }
            return PostgresConnection(thread: thread, box: box, gate: gate)
        } catch {
            thread.stop()
            throw error
        }
    }

    /// `connect`, blocking the calling thread: for threads of their own (HTTP handler
    /// threads), never Swift's cooperative pool.
    public static func connectBlocking(_ conninfo: String?, applicationName: String = "closebell") throws -> PostgresConnection {
        let thread = ThreadExecutor(name: "closebell-pq")
        do {
            let (box, gate) = try thread.runAndWait { try open(conninfo, applicationName: applicationName) }
            return PostgresConnection(thread: thread, box: box, gate: gate)
        } catch {
            thread.stop()
            throw error
        }
    }

    /// On the connection's thread: opens the session and its statement gate.
    private static func open(_ conninfo: String?, applicationName: String) throws -> (SessionBox, StatementGate) {
        let session = try PostgresSession(conninfo: conninfo, applicationName: applicationName)
        let gate = StatementGate(canceller: session.makeCanceller())
        session.beforeStatement = { try gate.checkCurrent() }
        return (SessionBox(session), gate)
    }

    deinit {
        let box = self.box
        thread.submit { box.session.close() }
        thread.stop()
    }

    /// Runs `body` with the blocking session, on the connection's thread.
    ///
    /// When the calling task is cancelled, the statement `body` is running is cancelled on the
    /// server (it fails with SQLSTATE 57014) and the statements `body` would send next fail at
    /// once with a `.cancelled` error; a call cancelled before it reached the thread runs
    /// nothing. Either way the error reaches the caller, and the connection stays usable.
    @discardableResult
    public func withSession<T: Sendable>(_ body: @escaping @Sendable (PostgresSession) throws -> T) async throws -> T {
        let box = self.box, gate = self.gate
        let call = gate.register()
        return try await thread.run({
            try gate.begin(call)
            defer { gate.end(call) }
            return try body(box.session)
        }, onCancel: {
            gate.cancel(call)
        })
    }

    /// `withSession`, blocking the calling thread until `body` has run on the connection's
    /// thread: for threads of their own (HTTP handler threads), never Swift's cooperative pool.
    /// There is no task to cancel, so the statement runs to its end (or its `statement_timeout`).
    @discardableResult
    public func withSessionBlocking<T: Sendable>(_ body: @escaping @Sendable (PostgresSession) throws -> T) throws -> T {
        let box = self.box, gate = self.gate
        let call = gate.register()
        return try thread.runAndWait {
            try gate.begin(call)
            defer { gate.end(call) }
            return try body(box.session)
        }
    }

    /// Runs one parameterized statement.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresBindable] = []) async throws -> PostgresRows {
        let texts = parameters.map { $0.postgresText }
        return try await withSession { try $0.query(sql, texts: texts) }
    }

    /// Runs one or more statements with the simple query protocol (no parameters).
    @discardableResult
    public func execute(_ sql: String) async throws -> PostgresRows {
        try await withSession { try $0.execute(sql) }
    }

    /// True while the connection is usable (asks libpq on the connection's thread).
    public func isConnected() async -> Bool {
        (try? await withSession { $0.isConnected }) ?? false
    }

    /// Closes the connection now.
    public func close() async {
        _ = try? await withSession { $0.close() }
    }

    /// `close`, blocking the calling thread (never call it on Swift's cooperative pool).
    public func closeBlocking() {
        _ = try? withSessionBlocking { $0.close() }
    }
}

/// Holds the non-Sendable session for the closures sent to the connection's thread.
private final class SessionBox: @unchecked Sendable {
    // @unchecked: a `PostgresSession` wraps a libpq `PGconn` pointer, which must not be used
    // from two threads at once; the session is only ever touched on the connection's own
    // `ThreadExecutor` thread (one thread, work in order), which Swift cannot see.
    let session: PostgresSession
    init(_ session: PostgresSession) { self.session = session }
}

/// Which `withSession` call owns a connection's thread, and which calls were cancelled.
///
/// A connection is shared by calls from many tasks (the worker's links), so cancelling one
/// call must cancel that call's statement and never the next caller's. Calls get increasing
/// numbers when they are made; the thread marks the one it runs as current. Cancelling a call
/// that has not begun makes it run nothing; cancelling the current call sends libpq's cancel
/// request, again every `resendSeconds` while the call is still current (a request that
/// reached the server before the statement did is ignored by it). Cancel requests are sent
/// under the lock, and `end` takes the lock, so a request meant for one call has been
/// delivered before the next call can begin.
final class StatementGate: Sendable {
    private struct Calls {
        var nextCall: UInt64 = 0
        /// Calls made and not yet ended, with whether each was cancelled.
        var cancelled: [UInt64: Bool] = [:]
        var current: UInt64?
    }

    /// Sends the cancel requests; nil when libpq could not make one (the call is then only
    /// stopped between statements).
    let canceller: PostgresCanceller?
    private let calls = LockedBox(Calls())
    /// Seconds between repeated cancel requests for a call that keeps running.
    private let resendSeconds: Double

    init(canceller: PostgresCanceller?, resendSeconds: Double = 0.5) {
        self.canceller = canceller
        self.resendSeconds = resendSeconds
    }

    /// Numbers a new call.
    func register() -> UInt64 {
        calls.withLock { c in
            c.nextCall += 1
            c.cancelled[c.nextCall] = false
            return c.nextCall
        }
    }

    /// On the connection's thread: makes `call` current, or throws when it was cancelled first.
    func begin(_ call: UInt64) throws {
        try calls.withLock { c throws(PostgresError) in
            if c.cancelled[call] == true {
                c.cancelled[call] = nil
                throw PostgresError.cancelledBeforeSending
            }
            c.current = call
        }
    }

    /// On the connection's thread, before each statement: throws when the current call was cancelled.
    func checkCurrent() throws {
        try calls.withLock { c throws(PostgresError) in
            if let current = c.current, c.cancelled[current] == true { throw PostgresError.cancelledBeforeSending }
        }
    }

    /// On the connection's thread: the call is over.
    func end(_ call: UInt64) {
        calls.withLock { c in
            if c.current == call { c.current = nil }
            c.cancelled[call] = nil
        }
    }

    /// From any thread: cancels `call` (nothing happens when it already ended).
    func cancel(_ call: UInt64) {
        let running = calls.withLock { c -> Bool in
            guard c.cancelled[call] != nil else { return false }
            c.cancelled[call] = true
            return c.current == call
        }
        guard running, canceller != nil else { return }
        // PQcancel opens a connection to the server and waits for it: never on the caller's
        // (cooperative) thread.
        let thread = Thread { [self] in self.sendCancels(for: call) }
        thread.name = "closebell-pq-cancel"
        thread.start()
    }

    private func sendCancels(for call: UInt64) {
        while true {
            let sent = calls.withLock { c -> Bool in
                guard c.current == call, let canceller else { return false }
                canceller.cancelCurrentStatement()
                return true
            }
            if !sent { return }
            Thread.sleep(forTimeInterval: resendSeconds)
        }
    }
}
