/// An error reported by libpq or by the PostgreSQL server.
///
/// Server errors carry the SQLSTATE code and the message fields a user needs (detail, hint,
/// the constraint, table or column involved). Connection errors carry libpq's message.
/// Neither ever includes the connection string, so a password cannot leak through one.
public struct PostgresError: Error, Sendable, CustomStringConvertible, Equatable {
    /// Where the error arose.
    public enum Kind: String, Sendable {
        /// The connection could not be opened or was lost.
        case connection
        /// The server rejected a statement.
        case server
        /// A row value could not be decoded into the requested Swift type.
        case decoding
        /// libpq reported a failure outside a server error (out of memory, COPY misuse...).
        case client
        /// The calling task was cancelled before the statement was sent; nothing ran.
        case cancelled
    }

    /// Where the error arose.
    public var kind: Kind
    /// The five-character SQLSTATE code, when the server sent one (for example `23505`).
    public var sqlState: String?
    /// The primary human-readable message.
    public var message: String
    /// The optional secondary message with more detail.
    public var detail: String?
    /// The optional suggestion of what to do.
    public var hint: String?
    /// The constraint involved, when the server named one.
    public var constraint: String?

    /// Creates an error value.
    public init(
        kind: Kind, sqlState: String? = nil, message: String, detail: String? = nil,
        hint: String? = nil, constraint: String? = nil
    ) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
        self.constraint = constraint
    }

    /// True when the error means the connection is gone and the caller should reconnect:
    /// libpq lost the socket, or the server is shutting down or refusing connections.
    public var isConnectionLost: Bool {
        if kind == .connection { return true }
        guard let state = sqlState else { return false }
        return state.hasPrefix("08") || state == "57P01" || state == "57P02" || state == "57P03"
    }

    /// True when the statement was cancelled: by the caller's task (before it was sent, or on
    /// the server with SQLSTATE 57014 `query_canceled`, which `statement_timeout` also raises).
    public var isCancellation: Bool { kind == .cancelled || sqlState == "57014" }

    /// True for a serialization failure (`40001`) or a detected deadlock (`40P01`): the
    /// transaction did nothing and running it again is the remedy.
    public var isTransient: Bool { sqlState == "40001" || sqlState == "40P01" }

    /// The error of a statement not sent because the caller's task was cancelled.
    static let cancelledBeforeSending = PostgresError(kind: .cancelled, message: "statement not sent: the task was cancelled")

    /// True for the SQLSTATE of a unique-constraint violation (`23505`).
    public var isUniqueViolation: Bool { sqlState == "23505" }

    /// The message, followed by the SQLSTATE, detail and hint when present.
    public var description: String {
        var text = message
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let detail, !detail.isEmpty { text += "; detail: \(detail)" }
        if let hint, !hint.isEmpty { text += "; hint: \(hint)" }
        return text
    }
}
