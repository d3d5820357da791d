import CLibPQ
import Foundation
import Toolkit

/// A notification received on a channel the session listens to.
public struct PostgresNotification: Sendable, Equatable {
    /// The channel name.
    public let channel: String
    /// The payload text (empty when none was sent).
    public let payload: String
    /// The backend process id of the session that sent it.
    public let senderPID: Int32
}

/// A blocking libpq connection.
///
/// Every call blocks the calling thread until the server answers, so a session is only ever
/// used on its `PostgresConnection`'s own thread (through `PostgresConnection.withSession`),
/// never on Swift's cooperative pool.
public final class PostgresSession {
    private var handle: OpaquePointer?
    /// Warnings and notices the server sent since the last `takeNotices()` (at most 100 kept).
    public private(set) var notices: [String] = []
    /// Runs before every statement is sent; throwing stops it from being sent. The owning
    /// `PostgresConnection` uses it to stop a cancelled call between its statements.
    var beforeStatement: (() throws -> Void)?

    /// Opens a connection. `conninfo` is a `postgresql://` URL or a `key=value` string; empty or
    /// nil means libpq's defaults: the `PG*` environment variables, service file and `.pgpass`.
    public init(conninfo: String?, applicationName: String = "closebell") throws {
        // libpq's messages about a malformed string quote pieces of it (a password with a stray
        // `%` or space, for instance); parse it first so the error is the redacted one.
        if let conninfo, Self.isConnectionString(conninfo) {
            do {
                _ = try ConnectionInfo(parsing: conninfo)
            } catch let error as ConnectionInfoError {
                throw PostgresError(kind: .connection, message: error.description)
            }
        }
        let keys = ["dbname", "application_name", "fallback_application_name", "client_encoding"]
        // dbname may hold a full URL or conninfo string: libpq expands it (expand_dbname = 1).
        let values: [String?] = [conninfo?.isEmpty == false ? conninfo : nil, nil, applicationName, "UTF8"]
        let cKeys = keys.map { strdup($0) }
        let cValues = values.map { $0.map { strdup($0) } ?? nil }
        defer {
            cKeys.forEach { free($0) }
            cValues.forEach { free($0) }
        }
        var keyPointers = cKeys.map { UnsafePointer<CChar>($0) } + [nil]
        var valuePointers = cValues.map { $0.map { UnsafePointer<CChar>($0) } } + [nil]
        // A nil value makes libpq skip that keyword, so the dbname slot falls back to PG* defaults.
        let conn = keyPointers.withUnsafeMutableBufferPointer { k in
            valuePointers.withUnsafeMutableBufferPointer { v in
                PQconnectdbParams(k.baseAddress, v.baseAddress, 1)
            }
        }
        guard let conn, PQstatus(conn) == CONNECTION_OK else {
            let message = conn.map { String(cString: PQerrorMessage($0)) } ?? "out of memory"
            if let conn { PQfinish(conn) }
            throw PostgresError(kind: .connection, message: Self.clean(message))
        }
        handle = conn
        PQsetNoticeReceiver(conn, { arg, result in
            guard let arg, let result else { return }
            let session = Unmanaged<PostgresSession>.fromOpaque(arg).takeUnretainedValue()
            session.recordNotice(String(cString: PQresultErrorMessage(result)))
        }, Unmanaged.passUnretained(self).toOpaque())
        // Stable text formats for dates and floats, whatever the server's defaults are.
        try execute("SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; SET extra_float_digits = 3")
    }

    deinit { close() }

    /// True when libpq reads `text` as a URL or `key=value` string rather than a database name.
    static func isConnectionString(_ text: String) -> Bool {
        text.hasPrefix("postgresql://") || text.hasPrefix("postgres://") || text.contains("=")
    }

    /// Closes the connection; later calls fail with a connection error.
    public func close() {
        if let handle { PQfinish(handle) }
        handle = nil
    }

    /// True while libpq considers the connection usable.
    public var isConnected: Bool {
        guard let handle else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// The server's backend process id for this session.
    public var backendPID: Int32 { handle.map { PQbackendPID($0) } ?? 0 }

    /// The server version as an integer (150018 for 15.18).
    public var serverVersion: Int { handle.map { Int(PQserverVersion($0)) } ?? 0 }

    /// The database this session is connected to.
    public var databaseName: String { handle.flatMap { PQdb($0) }.map { String(cString: $0) } ?? "" }

    /// Returns and clears the notices collected so far.
    public func takeNotices() -> [String] {
        defer { notices.removeAll() }
        return notices
    }

    private func recordNotice(_ text: String) {
        if notices.count < 100 { notices.append(Self.clean(text)) }
    }

    private func connection() throws -> OpaquePointer {
        guard let handle else { throw PostgresError(kind: .connection, message: "connection is closed") }
        return handle
    }

    /// Runs one statement with `$1, $2...` parameters, sent separately from the SQL text.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresBindable] = []) throws -> PostgresRows {
        try query(sql, texts: parameters.map { $0.postgresText })
    }

    /// Runs one statement with parameters already in text form (nil for NULL).
    @discardableResult
    public func query(_ sql: String, texts: [String?]) throws -> PostgresRows {
        try beforeStatement?()
        let conn = try connection()
        let cValues = texts.map { $0.map { strdup($0) } ?? nil }
        defer { cValues.forEach { free($0) } }
        let pointers = cValues.map { $0.map { UnsafePointer<CChar>($0) } }
        let result = pointers.withUnsafeBufferPointer { buffer in
            PQexecParams(conn, sql, Int32(texts.count), nil, buffer.baseAddress, nil, nil, 0)
        }
        return try consume(result, conn: conn)
    }

    /// Runs one or more statements without parameters (the simple query protocol); returns the
    /// last statement's rows. Use it for DDL, `SET`, `VACUUM` and migration files.
    @discardableResult
    public func execute(_ sql: String) throws -> PostgresRows {
        try beforeStatement?()
        return try executeUnchecked(sql)
    }

    /// `execute` without the cancellation check, for the ROLLBACK that ends a cancelled transaction.
    private func executeUnchecked(_ sql: String) throws -> PostgresRows {
        let conn = try connection()
        return try consume(PQexec(conn, sql), conn: conn)
    }

    /// Runs `body` inside `BEGIN … COMMIT`, rolling back when it throws. Throws when the
    /// server answered `COMMIT` with a rollback (a statement failed and `body` ignored it).
    public func transaction<T>(_ body: (PostgresSession) throws -> T) throws -> T {
        try execute("BEGIN")
        do {
            let value = try body(self)
            try commit()
            return value
        } catch {
            rollbackOrClose()
            throw error
        }
    }

    /// `COMMIT` of a failed transaction succeeds with the tag `ROLLBACK`: nothing was saved,
    /// so report it instead of returning as if the work were stored.
    private func commit() throws {
        let conn = try connection()
        guard let result = PQexec(conn, "COMMIT") else { throw lastError(conn) }
        let tag = PQcmdStatus(result).map { String(cString: $0) } ?? ""
        _ = try consume(result, conn: conn)
        if tag == "ROLLBACK" {
            throw PostgresError(
                kind: .server, sqlState: "25P02",
                message: "the transaction was rolled back at COMMIT: a statement in it failed and its error was ignored")
        }
    }

    /// Rolls back after a failed transaction body. A session left inside a transaction would
    /// run every later statement in it (and hold its locks), so it is closed when the
    /// rollback did not end the transaction; the next call then reports a connection error.
    private func rollbackOrClose() {
        guard let handle, PQstatus(handle) == CONNECTION_OK else { return }
        // A cancelled call's repeated cancel request may hit the first ROLLBACK: try twice.
        for _ in 0..<2 where PQtransactionStatus(handle) != PQTRANS_IDLE {
            _ = try? executeUnchecked("ROLLBACK")
        }
        if let handle = self.handle, PQtransactionStatus(handle) != PQTRANS_IDLE { close() }
    }

    /// Streams data into a `COPY … FROM STDIN` statement. `body` is handed a writer; the data
    /// is sent in chunks as it is written, and the COPY ends when `body` returns.
    /// Returns the number of rows copied.
    @discardableResult
    public func copyIn(_ sql: String, _ body: (inout CopyWriter) throws -> Void) throws -> Int {
        try beforeStatement?()
        let conn = try connection()
        let start = PQexec(conn, sql)
        let status = PQresultStatus(start)
        guard status == PGRES_COPY_IN else {
            _ = try consume(start, conn: conn)
            throw PostgresError(kind: .client, message: "statement did not start COPY FROM STDIN")
        }
        PQclear(start)
        var writer = CopyWriter(session: self)
        do {
            try body(&writer)
            try writer.flush()
            guard PQputCopyEnd(conn, nil) == 1 else { throw lastError(conn) }
        } catch {
            _ = PQputCopyEnd(conn, "aborted by client")
            while let r = PQgetResult(conn) { PQclear(r) }
            throw error
        }
        var rows = 0
        var failure: Error?
        while let result = PQgetResult(conn) {
            do { rows = try consume(result, conn: conn).affectedRows ?? rows } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
        return rows
    }

    fileprivate func putCopyData(_ bytes: [UInt8]) throws {
        let conn = try connection()
        let sent = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                PQputCopyData(conn, $0, Int32(buffer.count))
            }
        }
        guard sent == 1 else { throw lastError(conn) }
    }

    /// Starts listening on a channel (the name is quoted as an identifier).
    public func listen(_ channel: String) throws {
        try execute("LISTEN \(Self.quoteIdentifier(channel))")
    }

    /// Waits up to `timeout` seconds for notifications and returns those that arrived
    /// (possibly none). Throws a connection error when the connection is lost.
    public func waitForNotifications(timeout: Double) throws -> [PostgresNotification] {
        let conn = try connection()
        var received = drainNotifications(conn)
        if !received.isEmpty { return received }
        let socket = PQsocket(conn)
        guard socket >= 0 else { throw PostgresError(kind: .connection, message: "connection has no socket") }
        var fd = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        // poll takes Int32 milliseconds: -1 waits without limit; NaN and negatives mean 0.
        let millis: Int32
        if !(timeout > 0) {
            millis = 0
        } else if timeout * 1000 >= Double(Int32.max) {
            millis = -1
        } else {
            millis = Int32((timeout * 1000).rounded(.up))
        }
        let ready = poll(&fd, 1, millis)
        if ready < 0, errno != EINTR {
            throw PostgresError(kind: .connection, message: "poll failed: \(String(cString: strerror(errno)))")
        }
        if ready > 0 {
            guard PQconsumeInput(conn) == 1 else { throw lastError(conn) }
            received = drainNotifications(conn)
        }
        return received
    }

    private func drainNotifications(_ conn: OpaquePointer) -> [PostgresNotification] {
        var received: [PostgresNotification] = []
        _ = PQconsumeInput(conn)
        while let notify = PQnotifies(conn) {
            received.append(PostgresNotification(
                channel: String(cString: notify.pointee.relname),
                payload: String(cString: notify.pointee.extra),
                senderPID: notify.pointee.be_pid))
            PQfreemem(notify)
        }
        return received
    }

    /// Asks the server to cancel the statement this session is running. Safe to call from any
    /// thread while another thread is blocked in a query on this session.
    public func makeCanceller() -> PostgresCanceller? {
        guard let handle, let cancel = PQgetCancel(handle) else { return nil }
        return PostgresCanceller(cancel: cancel)
    }

    /// Quotes an identifier (table, column, channel) for safe use in SQL text.
    public static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// Quotes a string literal for SQL text (standard_conforming_strings on).
    public static func quoteLiteral(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }

    private func consume(_ result: OpaquePointer?, conn: OpaquePointer) throws -> PostgresRows {
        guard let result else { throw lastError(conn) }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return PostgresRows(columns: [], values: [], affectedRows: Self.affected(result))
        case PGRES_TUPLES_OK, PGRES_SINGLE_TUPLE:
            let rowCount = PQntuples(result), columnCount = PQnfields(result)
            let columns = (0..<columnCount).map { String(cString: PQfname(result, $0)) }
            var values: [[String?]] = []
            values.reserveCapacity(Int(rowCount))
            for row in 0..<rowCount {
                var items: [String?] = []
                items.reserveCapacity(Int(columnCount))
                for column in 0..<columnCount {
                    if PQgetisnull(result, row, column) == 1 {
                        items.append(nil)
                    } else {
                        items.append(String(cString: PQgetvalue(result, row, column)))
                    }
                }
                values.append(items)
            }
            return PostgresRows(columns: columns, values: values, affectedRows: Int(rowCount))
        default:
            throw Self.error(from: result, conn: conn)
        }
    }

    private static func affected(_ result: OpaquePointer) -> Int? {
        guard let text = PQcmdTuples(result) else { return nil }
        return Int(String(cString: text))
    }

    private static func error(from result: OpaquePointer, conn: OpaquePointer) -> PostgresError {
        func field(_ code: Int32) -> String? {
            guard let value = PQresultErrorField(result, code) else { return nil }
            return String(cString: value)
        }
        let state = field(Int32(UInt8(ascii: "C")))
        let message = field(Int32(UInt8(ascii: "M"))) ?? clean(String(cString: PQresultErrorMessage(result)))
        let lost = PQstatus(conn) != CONNECTION_OK
        return PostgresError(
            kind: lost && state == nil ? .connection : .server,
            sqlState: state,
            message: message.isEmpty ? clean(String(cString: PQerrorMessage(conn))) : message,
            detail: field(Int32(UInt8(ascii: "D"))),
            hint: field(Int32(UInt8(ascii: "H"))),
            constraint: field(Int32(UInt8(ascii: "n"))))
    }

    private func lastError(_ conn: OpaquePointer) -> PostgresError {
        let lost = PQstatus(conn) != CONNECTION_OK
        return PostgresError(kind: lost ? .connection : .client, message: Self.clean(String(cString: PQerrorMessage(conn))))
    }

    static func clean(_ message: String) -> String {
        message.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// A handle that cancels the statement running on one session, from any thread.
public final class PostgresCanceller: @unchecked Sendable {
    // @unchecked: wraps libpq's `PGcancel` pointer (not Sendable to Swift). libpq documents
    // `PQcancel` as safe to call from any thread; the calls are serialized all the same.
    private let cancel: OpaquePointer
    private let serial = LockedBox(())

    init(cancel: OpaquePointer) { self.cancel = cancel }
    deinit { PQfreeCancel(cancel) }

    /// Sends the cancel request; returns false when it could not be sent.
    @discardableResult
    public func cancelCurrentStatement() -> Bool {
        let cancel = self.cancel
        return serial.withLock { _ in
            var buffer = [CChar](repeating: 0, count: 256)
            return PQcancel(cancel, &buffer, Int32(buffer.count)) == 1
        }
    }
}

/// Buffers rows for `COPY … FROM STDIN` and sends them in chunks of about 256 KiB.
public struct CopyWriter {
    private let session: PostgresSession
    private var buffer: [UInt8] = []

    init(session: PostgresSession) {
        self.session = session
        buffer.reserveCapacity(300_000)
    }

    /// Appends one row in COPY text format: fields escaped, tab-separated, `\N` for NULL.
    public mutating func writeRow(_ fields: [String?]) throws {
        for (i, field) in fields.enumerated() {
            if i > 0 { buffer.append(9) }
            guard let field else {
                buffer.append(contentsOf: [92, 78])
                continue
            }
            for byte in field.utf8 {
                switch byte {
                case 92: buffer.append(contentsOf: [92, 92])
                case 9: buffer.append(contentsOf: [92, 116])
                case 10: buffer.append(contentsOf: [92, 110])
                case 13: buffer.append(contentsOf: [92, 114])
                default: buffer.append(byte)
                }
            }
        }
        buffer.append(10)
        if buffer.count >= 262_144 { try flush() }
    }

    /// Sends what is buffered.
    public mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        try session.putCopyData(buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}
