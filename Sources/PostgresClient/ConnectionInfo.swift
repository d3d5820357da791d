import CLibPQ
import Foundation

/// A connection string (`postgresql://` URL or `key=value` list) parsed by libpq itself
/// (`PQconninfoParse`), so it is read exactly as a connection would read it.
///
/// Only the keywords the string sets explicitly are present; libpq's defaults (`PG*`
/// variables, service file) are not resolved. Child programs such as `pg_dump` receive the
/// values through `environment(includingPassword:)`, never on their command line.
public struct ConnectionInfo: Sendable, Equatable {
    /// One keyword the string sets.
    public struct Option: Sendable, Equatable {
        /// The libpq keyword (`host`, `port`, `user`, `dbname`, `password`, `sslmode`, ...).
        public let keyword: String
        /// The environment variable libpq reads for this keyword (`PGHOST`), when there is one.
        public let environmentVariable: String?
        /// The value, decoded (percent-escapes of URLs resolved).
        public let value: String
    }

    /// The keywords the string sets, in libpq's order.
    public let options: [Option]

    /// Parses `conninfo`; nil or empty yields no options (libpq defaults apply).
    public init(parsing conninfo: String?) throws {
        guard let conninfo, !conninfo.trimmingCharacters(in: .whitespaces).isEmpty else {
            options = []
            return
        }
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let parsed = PQconninfoParse(conninfo, &errorMessage) else {
            let message = errorMessage.map { String(cString: $0) } ?? "out of memory"
            if let errorMessage { PQfreemem(errorMessage) }
            throw ConnectionInfoError(libpqMessage: message)
        }
        defer { PQconninfoFree(parsed) }
        var found: [Option] = []
        var cursor = parsed
        while let keyword = cursor.pointee.keyword {
            if let value = cursor.pointee.val {
                found.append(Option(
                    keyword: String(cString: keyword),
                    environmentVariable: cursor.pointee.envvar.map { String(cString: $0) },
                    value: String(cString: value)))
            }
            cursor = cursor.advanced(by: 1)
        }
        options = found
    }

    /// The value of a keyword, if the string sets it.
    public subscript(keyword: String) -> String? {
        options.first { $0.keyword == keyword }?.value
    }

    /// `host`, if set.
    public var host: String? { self["host"] }
    /// `port`, if set.
    public var port: String? { self["port"] }
    /// `user`, if set.
    public var user: String? { self["user"] }
    /// `dbname`, if set.
    public var databaseName: String? { self["dbname"] }
    /// `password`, if set (and not empty).
    public var password: String? { self["password"].flatMap { $0.isEmpty ? nil : $0 } }

    /// The `PG*` environment variables equivalent to this string (`PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGDATABASE`, `PGSSLMODE`, ...). The password is left out unless asked for; keywords
    /// libpq has no variable for are left out (they are listed by `keywordsWithoutVariable`).
    public func environment(includingPassword: Bool = false) -> [String: String] {
        var result: [String: String] = [:]
        for option in options {
            guard let variable = option.environmentVariable else { continue }
            if option.keyword == "password" && !includingPassword { continue }
            result[variable] = option.value
        }
        return result
    }

    /// Keywords set by the string that cannot be passed through the environment.
    public var keywordsWithoutVariable: [String] {
        options.filter { $0.environmentVariable == nil }.map(\.keyword)
    }

    /// A `key=value` connection string with the same keywords, some replaced or added
    /// (`overriding: ["dbname": "postgres"]`). It holds the password when there is one:
    /// hand it to libpq only, never print it.
    public func conninfoString(overriding overrides: [String: String] = [:]) -> String {
        var pairs: [(String, String)] = options.filter { overrides[$0.keyword] == nil }.map { ($0.keyword, $0.value) }
        pairs += overrides.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        return pairs.map { "\($0.0)=\(Self.quote($0.1))" }.joined(separator: " ")
    }

    /// Quotes a value for a `key=value` string: single quotes, with `\` and `'` escaped.
    static func quote(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}

/// libpq refused a connection string.
public struct ConnectionInfoError: Error, Sendable, CustomStringConvertible {
    /// libpq's message with every quoted fragment of the input replaced by `"…"` (a malformed
    /// string could otherwise echo a password).
    public let message: String

    init(libpqMessage: String) {
        let trimmed = libpqMessage.trimmingCharacters(in: .whitespacesAndNewlines)
        message = trimmed.replacingOccurrences(of: "\"[^\"]*\"", with: "\"…\"", options: .regularExpression)
    }

    public var description: String { "invalid connection string: \(message)" }
}

/// TCP settings that make a connection notice a dead peer (a server host that vanished, a
/// dropped route) in seconds instead of the kernel's hours: keepalive probes while the
/// connection is idle or waiting on a long statement, and `tcp_user_timeout` for data the peer
/// never acknowledges. Values the connection string sets itself are kept.
public struct ConnectionKeepalive: Sendable, Equatable {
    /// Seconds of silence before the first keepalive probe (`keepalives_idle`). Default 10.
    public var idleSeconds: Int
    /// Seconds between probes (`keepalives_interval`). Default 5.
    public var intervalSeconds: Int
    /// Unanswered probes after which the connection is dead (`keepalives_count`). Default 3.
    public var count: Int
    /// Seconds sent data may stay unacknowledged before the connection is dead
    /// (`tcp_user_timeout`; 0 leaves the kernel's default). Default 30.
    public var userTimeoutSeconds: Int
    /// Seconds a connection attempt may take (`connect_timeout`). Default 10.
    public var connectTimeoutSeconds: Int

    /// Creates settings; every argument has the documented default.
    public init(idleSeconds: Int = 10, intervalSeconds: Int = 5, count: Int = 3, userTimeoutSeconds: Int = 30, connectTimeoutSeconds: Int = 10) {
        self.idleSeconds = idleSeconds
        self.intervalSeconds = intervalSeconds
        self.count = count
        self.userTimeoutSeconds = userTimeoutSeconds
        self.connectTimeoutSeconds = connectTimeoutSeconds
    }

    /// The libpq keywords and values these settings stand for.
    public var keywords: [String: String] {
        [
            "keepalives": "1", "keepalives_idle": "\(idleSeconds)", "keepalives_interval": "\(intervalSeconds)",
            "keepalives_count": "\(count)", "tcp_user_timeout": "\(userTimeoutSeconds * 1000)",
            "connect_timeout": "\(connectTimeoutSeconds)",
        ]
    }

    /// `conninfo` with these settings added where it does not set them (with `replacing`, in
    /// place of its own). nil or empty (libpq's `PG*` defaults) gives a string of these settings
    /// alone; a bare database name is kept as `dbname`. Throws when libpq cannot parse
    /// `conninfo`. The result holds the password when `conninfo` does: hand it to libpq only.
    public func applied(to conninfo: String?, replacing: Bool = false) throws -> String {
        var base = conninfo ?? ""
        if !base.trimmingCharacters(in: .whitespaces).isEmpty, !PostgresSession.isConnectionString(base) {
            base = "dbname=\(ConnectionInfo.quote(base))"
        }
        let info = try ConnectionInfo(parsing: base)
        let chosen = replacing ? keywords : keywords.filter { info[$0.key] == nil }
        return info.conninfoString(overriding: chosen)
    }
}
