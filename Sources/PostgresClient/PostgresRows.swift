/// The rows a statement returned, in PostgreSQL's text format, detached from libpq.
public struct PostgresRows: Sendable, Sequence {
    /// Column names, in order.
    public let columns: [String]
    /// One array of text values (nil for NULL) per row.
    public let values: [[String?]]
    /// The count from the command tag (rows inserted, updated, deleted...), or nil when none.
    public let affectedRows: Int?

    /// Creates a result from already extracted values.
    public init(columns: [String], values: [[String?]], affectedRows: Int?) {
        self.columns = columns
        self.values = values
        self.affectedRows = affectedRows
    }

    /// The number of rows.
    public var count: Int { values.count }
    /// True when no row came back.
    public var isEmpty: Bool { values.isEmpty }
    /// The first row, if any.
    public var first: PostgresRow? { values.isEmpty ? nil : PostgresRow(rows: self, index: 0) }

    public func makeIterator() -> AnyIterator<PostgresRow> {
        var index = 0
        return AnyIterator {
            guard index < values.count else { return nil }
            defer { index += 1 }
            return PostgresRow(rows: self, index: index)
        }
    }

    func columnIndex(_ name: String) -> Int? { columns.firstIndex(of: name) }
}

/// One row of a `PostgresRows`, with typed accessors by column name.
public struct PostgresRow: Sendable {
    let rows: PostgresRows
    let index: Int

    /// The raw text of a column, or nil when it is NULL or absent.
    public subscript(_ column: String) -> String? {
        guard let i = rows.columnIndex(column) else { return nil }
        return rows.values[index][i]
    }

    /// Decodes a non-NULL column; throws a decoding error naming the column otherwise.
    public func decode<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        guard let i = rows.columnIndex(column) else {
            throw PostgresError(kind: .decoding, message: "no column \"\(column)\" in the result")
        }
        guard let text = rows.values[index][i] else {
            throw PostgresError(kind: .decoding, message: "column \"\(column)\" is NULL, expected \(T.self)")
        }
        guard let value = T(postgresText: text) else {
            throw PostgresError(kind: .decoding, message: "column \"\(column)\" value \"\(text.prefix(80))\" is not a valid \(T.self)")
        }
        return value
    }

    /// Decodes a column that may be NULL.
    public func decodeIfPresent<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T? {
        guard let i = rows.columnIndex(column) else {
            throw PostgresError(kind: .decoding, message: "no column \"\(column)\" in the result")
        }
        guard let text = rows.values[index][i] else { return nil }
        guard let value = T(postgresText: text) else {
            throw PostgresError(kind: .decoding, message: "column \"\(column)\" value \"\(text.prefix(80))\" is not a valid \(T.self)")
        }
        return value
    }
}
