import PostgresClient

/// Every TimescaleDB statement closebell runs, in one place (documented in `sql/timescaledb.sql`).
///
/// TimescaleDB cannot be installed where the test suite runs, so these texts are kept small,
/// reviewable and unit-tested as strings; each one is only reached after
/// `installedVersion` found the extension. Table and chunk names are spliced in only after the
/// catalog quoted them (`format('%I.%I')`), and are then passed as string literals.
public enum TimescaleSQL {
    /// The extension's version (`pg_extension.extversion`); no row without TimescaleDB.
    public static let installedVersion =
        "SELECT extversion AS version FROM pg_extension WHERE extname = 'timescaledb'"

    /// The license the server runs under: `timescale` (community, compression available) or
    /// `apache` (no compression).
    public static let license = "SHOW timescaledb.license"

    /// The time dimension of a hypertable ($1 schema, $2 table); no row for a plain table.
    public static let timeDimension = """
        SELECT d.column_name AS column_name
          FROM timescaledb_information.dimensions d
         WHERE d.hypertable_schema = $1 AND d.hypertable_name = $2 AND d.dimension_number = 1
        """

    /// Every hypertable, with whether compression is enabled and its quoted name.
    public static let hypertables = """
        SELECT h.hypertable_schema AS schema, h.hypertable_name AS name,
               format('%I.%I', h.hypertable_schema, h.hypertable_name) AS quoted,
               h.compression_enabled AS compression_enabled
          FROM timescaledb_information.hypertables h
         ORDER BY 1, 2
        """

    /// Total bytes of a hypertable and its chunks ($1 the quoted name).
    public static let hypertableSize = "SELECT hypertable_size($1::regclass) AS bytes"

    /// True when $1 (schema) . $2 (table) is a hypertable.
    public static let isHypertable = """
        SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables h
                        WHERE h.hypertable_schema = $1 AND h.hypertable_name = $2) AS hyper
        """

    /// Sizes of a hypertable summed over its chunks ($1 the quoted name), with the column
    /// names of the plain-table size query.
    public static let hypertableDetailedSize = """
        SELECT coalesce(sum(d.total_bytes), 0)::bigint AS total_bytes,
               coalesce(sum(d.table_bytes + coalesce(d.toast_bytes, 0)), 0)::bigint AS table_bytes,
               coalesce(sum(d.index_bytes), 0)::bigint AS index_bytes
          FROM hypertable_detailed_size($1::regclass) d
        """

    /// Drops the chunks of hypertable $1 whose whole range lies before the cutoff date $2
    /// (New York midnight for a timestamptz dimension); returns how many went. Chunks that
    /// straddle the cutoff stay: drop_chunks never deletes single rows.
    public static func dropChunks(columnType: String) -> String {
        "SELECT count(*) AS chunks FROM drop_chunks($1::regclass, older_than => \(RetentionSQL.cutoff(parameter: "$2", columnType: columnType)))"
    }

    /// Counts what `dropChunks` would drop (dry run).
    public static func countDroppableChunks(columnType: String) -> String {
        "SELECT count(*) AS chunks FROM show_chunks($1::regclass, older_than => \(RetentionSQL.cutoff(parameter: "$2", columnType: columnType)))"
    }

    /// Turns compression on for a hypertable, segmented by `segmentBy` (when the table has that
    /// column) and ordered by its time column, newest first. Both names must come quoted from
    /// the catalog (`quote_ident`); they are embedded as string literals.
    public static func enableCompression(table quotedTable: String, segmentBy quotedSegment: String?, orderBy quotedTime: String) -> String {
        var options = ["timescaledb.compress"]
        if let quotedSegment {
            options.append("timescaledb.compress_segmentby = \(PostgresSession.quoteLiteral(quotedSegment))")
        }
        options.append("timescaledb.compress_orderby = \(PostgresSession.quoteLiteral(quotedTime + " DESC"))")
        return "ALTER TABLE \(quotedTable) SET (\(options.joined(separator: ", ")))"
    }

    /// The uncompressed chunks of hypertable $1 whose range ended more than $2 days ago,
    /// oldest first, as quoted names.
    public static let uncompressedChunksOlderThan = """
        SELECT s.chunk::text AS chunk
          FROM show_chunks($1::regclass, older_than => make_interval(days => $2::int)) AS s(chunk)
          JOIN timescaledb_information.chunks ch
            ON format('%I.%I', ch.chunk_schema, ch.chunk_name)::regclass = s.chunk
         WHERE NOT ch.is_compressed
         ORDER BY ch.range_start
        """

    /// Compresses one chunk (its own statement, so its own transaction) before 2.18.
    public static func compressChunk(_ quotedChunk: String) -> String {
        "SELECT compress_chunk(\(PostgresSession.quoteLiteral(quotedChunk))::regclass, if_not_compressed => true)"
    }

    /// Converts one chunk to the columnstore, 2.18 and later (`compress_chunk` is deprecated there).
    public static func convertToColumnstore(_ quotedChunk: String) -> String {
        "CALL convert_to_columnstore(\(PostgresSession.quoteLiteral(quotedChunk))::regclass, if_not_columnstore => true)"
    }

    /// The statement compressing one chunk for a given extension version.
    public static func compressStatement(chunk quotedChunk: String, version: String) -> String {
        usesColumnstoreAPI(version: version) ? convertToColumnstore(quotedChunk) : compressChunk(quotedChunk)
    }

    /// True from TimescaleDB 2.18, which renamed compression to the columnstore API.
    public static func usesColumnstoreAPI(version: String) -> Bool {
        let parts = version.split(separator: ".").map { Int($0.prefix { $0.isNumber }) ?? 0 }
        let major = parts.first ?? 0, minor = parts.count > 1 ? parts[1] : 0
        return major > 2 || (major == 2 && minor >= 18)
    }
}

/// The plain-PostgreSQL retention statements (the batched delete).
public enum RetentionSQL {
    /// The SQL expression comparing a retention column with a cutoff date parameter: the
    /// date itself for `date`, midnight for `timestamp`, New York midnight for `timestamptz`,
    /// so "before the cutoff" means "a New York date before the cutoff" in every case.
    public static func cutoff(parameter: String, columnType: String) -> String {
        switch columnType {
        case "timestamptz": return "(\(parameter)::date::timestamp AT TIME ZONE 'America/New_York')"
        case "timestamp": return "\(parameter)::date::timestamp"
        default: return "\(parameter)::date"
        }
    }
}
