import PostgresClient

/// A table found in the catalog, with its names quoted by the server.
struct ResolvedTable: Sendable, Equatable {
    /// The table's oid.
    let oid: Int64
    /// The schema, as stored.
    let schema: String
    /// The table name, as stored.
    let name: String
    /// `schema.name`, each part quoted as needed (`format('%I.%I')`): safe to splice into SQL.
    let quoted: String
    /// `schema.name` for reports.
    var qualified: String { "\(schema).\(name)" }
}

/// A column found in the catalog.
struct ResolvedColumn: Sendable, Equatable {
    /// The column name, quoted (`quote_ident`).
    let quoted: String
    /// The type name of the column (`date`, `timestamptz`...), from `pg_type.typname`.
    let typeName: String
    /// The full type as `format_type` prints it.
    let displayType: String
}

/// Checks names from config and job args against the catalog before they reach SQL text.
enum Catalog {
    /// True for `name` or `schema.name` made of plain identifier characters. Everything else
    /// (quotes, spaces, semicolons, comments) is refused without asking the server.
    static func isPlainName(_ text: String, allowSchema: Bool = true) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard !parts.isEmpty, parts.count <= (allowSchema ? 2 : 1) else { return false }
        return parts.allSatisfy { part in
            guard let first = part.unicodeScalars.first, part.utf8.count <= 63 else { return false }
            let isLetter: (Unicode.Scalar) -> Bool = { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || $0 == "_" }
            return isLetter(first) && part.unicodeScalars.allSatisfy { isLetter($0) || ("0"..."9").contains($0) || $0 == "$" }
        }
    }

    /// Resolves a table name (search_path applies to unqualified names) to an ordinary or
    /// partitioned table; nil when there is no such table. Throws `invalidTableName` for
    /// anything but a plain name.
    static func table(_ name: String, session: PostgresSession) throws -> ResolvedTable? {
        guard isPlainName(name) else { throw MaintenanceError.invalidTableName(name) }
        let rows = try session.query(
            """
            SELECT c.oid::bigint AS oid, n.nspname AS schema, c.relname AS name,
                   format('%I.%I', n.nspname, c.relname) AS quoted
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p')
            """, [name])
        guard let row = rows.first else { return nil }
        return ResolvedTable(
            oid: try row.decode("oid"), schema: try row.decode("schema"), name: try row.decode("name"),
            quoted: try row.decode("quoted"))
    }

    /// Finds a column of a resolved table (exact name, as stored); nil when absent.
    static func column(_ name: String, of table: ResolvedTable, session: PostgresSession) throws -> ResolvedColumn? {
        guard isPlainName(name, allowSchema: false) else {
            throw MaintenanceError.invalidColumnName(table: table.qualified, column: name)
        }
        let rows = try session.query(
            """
            SELECT quote_ident(a.attname) AS quoted, t.typname AS type_name,
                   format_type(a.atttypid, a.atttypmod) AS display_type
              FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
             WHERE a.attrelid = $1::oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped
            """, [table.oid, name])
        guard let row = rows.first else { return nil }
        return ResolvedColumn(
            quoted: try row.decode("quoted"), typeName: try row.decode("type_name"),
            displayType: try row.decode("display_type"))
    }

    /// The installed TimescaleDB version (`pg_extension.extversion`), or nil.
    static func timescaleVersion(session: PostgresSession) throws -> String? {
        try session.query(TimescaleSQL.installedVersion).first?.decodeIfPresent("version")
    }
}
