import Foundation
import Toolkit
import Logging
import PostgresClient

/// One database connection that reconnects with backoff when it is lost.
///
/// A lost connection (server restart, network) never ends the worker: the operation's error
/// is reported to the caller, the broken connection is dropped, and the next call reconnects.
final class DatabaseLink: Sendable {
    private let conninfo: String?
    private let role: String
    private let logger: Logger
    private let minDelay: Double
    private let maxDelay: Double
    /// The open connection, and the failures since the last success.
    private let state = LockedBox<(connection: PostgresConnection?, failures: Int)>((nil, 0))
    /// Runs on the fresh session after every (re)connection, e.g. LISTEN.
    private let onConnect: (@Sendable (PostgresSession) throws -> Void)?

    init(conninfo: String?, role: String, logger: Logger, minDelay: Double, maxDelay: Double,
         onConnect: (@Sendable (PostgresSession) throws -> Void)? = nil) {
        self.conninfo = conninfo
        self.role = role
        self.logger = logger
        self.minDelay = minDelay
        self.maxDelay = maxDelay
        self.onConnect = onConnect
    }

    /// Runs `body` on the connection's thread, connecting first when needed. A connection
    /// error drops the connection and is rethrown after a backoff sleep.
    func run<T: Sendable>(_ body: @escaping @Sendable (PostgresSession) throws -> T) async throws -> T {
        let connection = try await current()
        do {
            let value = try await connection.withSession(body)
            state.withLock { $0.failures = 0 }
            return value
        } catch let error as PostgresError where error.isConnectionLost {
            drop(connection)
            try await backoff(error)
            throw error
        }
    }

    /// Closes the connection.
    func close() async {
        let old = state.withLock { s -> PostgresConnection? in
            defer { s.connection = nil }
            return s.connection
        }
        await old?.close()
    }

    private func current() async throws -> PostgresConnection {
        if let existing = state.withLock({ $0.connection }) { return existing }
        do {
            let fresh = try await PostgresConnection.connect(conninfo, applicationName: "closebell worker (\(role))")
            if let onConnect { try await fresh.withSession(onConnect) }
            let hadFailures = state.withLock { s -> Bool in
                s.connection = fresh
                defer { s.failures = 0 }
                return s.failures > 0
            }
            if hadFailures { logger.info("database_reconnected", metadata: ["connection": "\(role)"]) }
            return fresh
        } catch let error as PostgresError {
            try await backoff(error)
            throw error
        }
    }

    private func drop(_ broken: PostgresConnection) {
        state.withLock { s in if s.connection === broken { s.connection = nil } }
    }

    private func backoff(_ error: PostgresError) async throws {
        let attempt = state.withLock { s -> Int in
            s.failures += 1
            return s.failures
        }
        let delay = min(maxDelay, minDelay * pow(2, Double(min(attempt - 1, 20)))) * Double.random(in: 0.8...1.2)
        logger.warning("database_unavailable", metadata: [
            "connection": "\(role)", "error": "\(error)", "retry_in_s": "\(String(format: "%.2f", delay))",
        ])
        try await Task.sleep(nanoseconds: UInt64(delay * 1_000_000_000))
    }
}
