import Foundation
import PostgresClient

/// One database connection used from the HTTP server's connection threads (dedicated OS
/// threads, never the cooperative pool, so blocking libpq calls are fine there).
///
/// Calls are serialized by a lock. The connection is opened on first use with a short
/// `connect_timeout` and `statement_timeout`, and dropped when it fails, so the next call
/// reconnects: after a database restart the endpoints recover on their own.
final class BlockingDatabase: @unchecked Sendable {
    // @unchecked: holds a `PostgresSession` (a libpq `PGconn` pointer, not Sendable), which
    // `LockedBox` cannot hold as Sendable; every use of it is serialized by `lock`. Goes when
    // the endpoints use the one reconnecting `DatabaseLink` (issue 14, not done in this round).
    private let conninfo: String?
    private let timeoutSeconds: Int
    private let lock = NSLock()
    private var session: PostgresSession?

    init(conninfo: String?, timeoutSeconds: Int) {
        self.conninfo = conninfo
        self.timeoutSeconds = max(1, timeoutSeconds)
    }

    /// Runs `body` with a live session. A connection-level failure closes the session and, when
    /// the session was an old one (the server may have restarted since), retries once on a new
    /// connection.
    func withSession<T>(_ body: (PostgresSession) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        let reused = session != nil
        do {
            return try body(try openIfNeeded())
        } catch let error as PostgresError where error.isConnectionLost || error.kind == .connection {
            closeLocked()
            guard reused else { throw error }
            do {
                return try body(try openIfNeeded())
            } catch let error as PostgresError where error.isConnectionLost || error.kind == .connection {
                closeLocked()
                throw error
            }
        }
    }

    /// Closes the connection (the next call opens a new one).
    func close() {
        lock.withLock { closeLocked() }
    }

    private func closeLocked() {
        session?.close()
        session = nil
    }

    private func openIfNeeded() throws -> PostgresSession {
        if let session, session.isConnected { return session }
        closeLocked()
        let info = try ConnectionInfo(parsing: conninfo)
        // A server that vanishes without closing the socket is noticed within the timeout too.
        let withTimeout = info.conninfoString(overriding: [
            "connect_timeout": "\(timeoutSeconds)", "tcp_user_timeout": "\(timeoutSeconds * 1000)",
            "keepalives": "1", "keepalives_idle": "\(timeoutSeconds)", "keepalives_interval": "1", "keepalives_count": "\(timeoutSeconds)",
        ])
        let opened = try PostgresSession(conninfo: withTimeout, applicationName: "closebell operations")
        _ = try opened.execute("SET statement_timeout = '\(timeoutSeconds)s'")
        session = opened
        return opened
    }
}
