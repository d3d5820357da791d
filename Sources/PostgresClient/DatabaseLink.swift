import Foundation
import Toolkit

/// One database connection that reconnects when it is lost: the one connection holder of the
/// project (the worker's claim, ack, listen and housekeeping connections, the alert loop, the
/// shared Polygon budget, the operations endpoint).
///
/// The connection opens on first use, with the policy's keepalive settings and the `setup`
/// statements (`LISTEN`, `SET …`). A connection-level failure (`PostgresError.isConnectionLost`,
/// which includes failing to connect) drops it, is reported to `onEvent`, and reaches the
/// caller; the next call reconnects. A database restart or an outage therefore never needs the
/// holder's attention. Statements run through `PostgresConnection`: cancelling the calling task
/// cancels the running statement on the server (libpq's cancel request) and sends no more.
public final class DatabaseLink: Sendable {
    /// How a link connects and when it waits after a failure.
    public struct Policy: Sendable {
        /// TCP keepalives, `tcp_user_timeout` and `connect_timeout` of every connection; nil
        /// leaves the connection string as it is.
        public var keepalive: ConnectionKeepalive?
        /// True: `keepalive` replaces what the connection string sets; false: it only fills in
        /// what the string leaves out.
        public var keepaliveReplaces: Bool
        /// Seconds an async call that failed for want of a connection sleeps before it throws,
        /// doubling with each failure in a row up to `maxDelaySeconds`, ±20 % jitter, so that a
        /// caller's retry loop backs off by itself; 0 throws at once. Blocking calls never sleep.
        public var minDelaySeconds: Double
        /// The longest backoff sleep.
        public var maxDelaySeconds: Double
        /// Runs a call once more on a new connection when it failed on a connection opened by an
        /// earlier call (the server may have restarted since): for reads and idempotent calls.
        public var retryOnStaleConnection: Bool

        /// Creates a policy; by default no keepalive settings, no backoff, no second try.
        public init(keepalive: ConnectionKeepalive? = nil, keepaliveReplaces: Bool = false, minDelaySeconds: Double = 0,
                    maxDelaySeconds: Double = 0, retryOnStaleConnection: Bool = false) {
            self.keepalive = keepalive
            self.keepaliveReplaces = keepaliveReplaces
            self.minDelaySeconds = max(0, minDelaySeconds)
            self.maxDelaySeconds = max(self.minDelaySeconds, maxDelaySeconds)
            self.retryOnStaleConnection = retryOnStaleConnection
        }

        /// The backoff before the error of the `failures`-th failure in a row is thrown.
        func delay(afterFailures failures: Int) -> Double {
            guard minDelaySeconds > 0 else { return 0 }
            let exponent = Double(min(max(failures, 1) - 1, 20))
            return min(maxDelaySeconds, minDelaySeconds * pow(2, exponent)) * Double.random(in: 0.8...1.2)
        }
    }

    /// What happened to the link, for the holder's log.
    public enum Event: Sendable {
        /// A call failed for want of a connection; the caller gets the error after `retryInSeconds`
        /// (0 when the policy has no backoff).
        case unavailable(PostgresError, retryInSeconds: Double)
        /// A connection was opened again after failures.
        case reconnected
    }

    private struct State {
        var connection: PostgresConnection?
        /// Connection failures since the last success.
        var failures = 0
    }

    private let conninfo: String?
    private let applicationName: String
    private let policy: Policy
    private let setup: (@Sendable (PostgresSession) throws -> Void)?
    private let onEvent: (@Sendable (Event) -> Void)?
    private let state = LockedBox(State())

    /// Creates a link; nothing connects before the first call.
    ///
    /// - Parameters:
    ///   - conninfo: URL or `key=value` string; nil or empty uses libpq's `PG*` defaults.
    ///   - applicationName: `application_name` of the connections (seen in `pg_stat_activity`).
    ///   - policy: keepalive settings, backoff and second try.
    ///   - setup: runs on every new connection before its first call (`LISTEN`, `SET`).
    ///   - onEvent: told when the database becomes unavailable and when it is back.
    public init(conninfo: String?, applicationName: String, policy: Policy = Policy(),
                setup: (@Sendable (PostgresSession) throws -> Void)? = nil, onEvent: (@Sendable (Event) -> Void)? = nil) {
        // A string libpq cannot parse is kept: connecting then fails with its (redacted) error.
        self.conninfo = policy.keepalive.flatMap { try? $0.applied(to: conninfo, replacing: policy.keepaliveReplaces) } ?? conninfo
        self.applicationName = applicationName
        self.policy = policy
        self.setup = setup
        self.onEvent = onEvent
    }

    /// Runs `body` with the session on the connection's thread, connecting first when needed.
    /// A connection-level error drops the connection (the next call reconnects) and is rethrown,
    /// after the policy's backoff.
    public func run<T: Sendable>(_ body: @escaping @Sendable (PostgresSession) throws -> T) async throws -> T {
        let (connection, reused) = try await connected()
        do {
            return try await succeeded(connection.withSession(body))
        } catch let error as PostgresError where error.isConnectionLost {
            drop(connection)
            guard reused, policy.retryOnStaleConnection else { throw try await failed(error) }
        }
        let (fresh, _) = try await connected()
        do {
            return try await succeeded(fresh.withSession(body))
        } catch let error as PostgresError where error.isConnectionLost {
            drop(fresh)
            throw try await failed(error)
        }
    }

    /// Runs one parameterized statement (see `run`).
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresBindable] = []) async throws -> PostgresRows {
        let texts = parameters.map { $0.postgresText }
        return try await run { try $0.query(sql, texts: texts) }
    }

    /// `run`, blocking the calling thread: for threads of their own (the HTTP server's handler
    /// threads), never Swift's cooperative pool. It never sleeps a backoff.
    public func runBlocking<T: Sendable>(_ body: @escaping @Sendable (PostgresSession) throws -> T) throws -> T {
        let (connection, reused) = try connectedBlocking()
        do {
            return succeeded(try connection.withSessionBlocking(body))
        } catch let error as PostgresError where error.isConnectionLost {
            drop(connection)
            guard reused, policy.retryOnStaleConnection else { throw report(error).error }
        }
        let (fresh, _) = try connectedBlocking()
        do {
            return succeeded(try fresh.withSessionBlocking(body))
        } catch let error as PostgresError where error.isConnectionLost {
            drop(fresh)
            throw report(error).error
        }
    }

    /// Closes the connection (a later call opens a new one).
    public func close() async {
        await take()?.close()
    }

    /// `close`, blocking the calling thread (never on Swift's cooperative pool).
    public func closeBlocking() {
        take()?.closeBlocking()
    }

    // MARK: - Connection state

    /// The open connection and true, or a new one and false.
    private func connected() async throws -> (PostgresConnection, Bool) {
        if let existing = state.withLock({ $0.connection }) { return (existing, true) }
        do {
            let fresh = try await PostgresConnection.connect(conninfo, applicationName: applicationName)
            do {
                if let setup { try await fresh.withSession(setup) }
            } catch {
                await fresh.close()
                throw error
            }
            return (install(fresh), false)
        } catch let error as PostgresError {
            throw try await failed(error)
        }
    }

    private func connectedBlocking() throws -> (PostgresConnection, Bool) {
        if let existing = state.withLock({ $0.connection }) { return (existing, true) }
        do {
            let fresh = try PostgresConnection.connectBlocking(conninfo, applicationName: applicationName)
            do {
                if let setup { try fresh.withSessionBlocking(setup) }
            } catch {
                fresh.closeBlocking()
                throw error
            }
            return (install(fresh), false)
        } catch let error as PostgresError {
            throw report(error).error
        }
    }

    /// Keeps `fresh` as the connection, unless a concurrent call installed one first (then
    /// that one is used and `fresh` closes when released).
    private func install(_ fresh: PostgresConnection) -> PostgresConnection {
        let (kept, recovered) = state.withLock { s -> (PostgresConnection, Bool) in
            if let existing = s.connection { return (existing, false) }
            s.connection = fresh
            defer { s.failures = 0 }
            return (fresh, s.failures > 0)
        }
        if recovered { onEvent?(.reconnected) }
        return kept
    }

    private func succeeded<T>(_ value: T) -> T {
        state.withLock { $0.failures = 0 }
        return value
    }

    private func drop(_ broken: PostgresConnection) {
        state.withLock { s in if s.connection === broken { s.connection = nil } }
    }

    private func take() -> PostgresConnection? {
        state.withLock { s in
            defer { s.connection = nil }
            return s.connection
        }
    }

    /// Counts the failure and reports it; returns the error and the backoff the policy asks for.
    private func report(_ error: PostgresError) -> (error: PostgresError, delay: Double) {
        let failures = state.withLock { s -> Int in
            s.failures += 1
            return s.failures
        }
        let delay = policy.delay(afterFailures: failures)
        onEvent?(.unavailable(error, retryInSeconds: delay))
        return (error, delay)
    }

    /// `report`, then the backoff sleep; returns the error for the caller to throw.
    private func failed(_ error: PostgresError) async throws -> PostgresError {
        let (error, delay) = report(error)
        if delay > 0 { try await Task.sleep(nanoseconds: UInt64(delay * 1_000_000_000)) }
        return error
    }
}
