import Foundation

/// A PostgreSQL connection that owns a dedicated thread.
///
/// libpq blocks; Swift's cooperative pool has one thread per core. So every libpq call made
/// through this type runs on the connection's own thread, and async callers suspend until it
/// is done. Use `withSession` to run several statements (a transaction) in one hop.
public final class PostgresConnection: Sendable {
    private let thread: DedicatedThread
    private let box: SessionBox
    /// The server's process id for this connection (useful in logs and `pg_stat_activity`).
    public let backendPID: Int32
    /// The server version as an integer (150018 for 15.18).
    public let serverVersion: Int
    /// The name of the connected database.
    public let databaseName: String
    /// Cancels the statement running on this connection, from any thread.
    public let canceller: PostgresCanceller?

    private init(thread: DedicatedThread, box: SessionBox, session: PostgresSession) {
        self.thread = thread
        self.box = box
        self.backendPID = session.backendPID
        self.serverVersion = session.serverVersion
        self.databaseName = session.databaseName
        self.canceller = session.makeCanceller()
    }

    /// Opens a connection on a new thread. `conninfo` is a URL or `key=value` string; nil or
    /// empty uses libpq's `PG*` variables, service file and `.pgpass`.
    public static func connect(_ conninfo: String?, applicationName: String = "closebell") async throws -> PostgresConnection {
        let thread = DedicatedThread(name: "closebell-pq")
        do {
            let session = try await thread.run { try PostgresSession(conninfo: conninfo, applicationName: applicationName) }
            let box = SessionBox(session)
            return PostgresConnection(thread: thread, box: box, session: session)
        } catch {
            thread.stop()
            throw error
        }
    }

    deinit {
        let box = self.box
        thread.submit { box.session.close() }
        thread.stop()
    }

    /// Runs `body` with the blocking session, on the connection's thread.
    @discardableResult
    public func withSession<T: Sendable>(_ body: @escaping @Sendable (PostgresSession) throws -> T) async throws -> T {
        let box = self.box
        return try await thread.run { try body(box.session) }
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
}

/// Holds the non-Sendable session; only the owning thread touches it.
private final class SessionBox: @unchecked Sendable {
    let session: PostgresSession
    init(_ session: PostgresSession) { self.session = session }
}

/// One OS thread that runs submitted closures in order.
final class DedicatedThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [() -> Void] = []
    private var stopping = false

    init(name: String) {
        let thread = Thread { [self] in self.loop() }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }

    func submit(_ work: @escaping () -> Void) {
        condition.lock()
        queue.append(work)
        condition.signal()
        condition.unlock()
    }

    /// Lets the thread finish what is queued, then exit.
    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    func run<T>(_ work: @escaping () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            submit {
                do { continuation.resume(returning: try work()) } catch { continuation.resume(throwing: error) }
            }
        }
    }

    private func loop() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty {
                condition.unlock()
                return
            }
            let work = queue.removeFirst()
            condition.unlock()
            work()
        }
    }
}
