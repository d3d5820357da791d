import PostgresClient

/// Every TimescaleDB statement closebell runs, in one place (documented in `sql/timescaledb.sql`).
///
/// Checked against TimescaleDB 2.28.3 on PostgreSQL 15 (the suite's TimescaleTests run them
/// when the extension is installed); each one is only reached after `installedVersion` found
/// the extension. Table and chunk names are spliced in only after the catalog quoted them
/// (`format('%I.%I')`), and are then passed as string literals.
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

    /// Whether compression is on for hypertable $1 (schema) . $2 (table); no row for a table
    /// that is not a hypertable.
    public static let compressionEnabled = """
        SELECT h.compression_enabled AS compression_enabled
          FROM timescaledb_information.hypertables h
         WHERE h.hypertable_schema = $1 AND h.hypertable_name = $2
        """

    /// Total bytes of a hypertable and its chunks ($1 the quoted name).
    public static let hypertableSize = "SELECT hypertable_size($1::regclass) AS bytes"

    /// True when $1 (schema) . $2 (table) is a hypertable.
    public static let isHypertable = """
        SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables h
                        WHERE h.hypertable_schema = $1 AND h.hypertable_name = $2) AS hyper
        """

    /// Sizes and tuple counts of a hypertable summed over its chunks ($1 the quoted name), with
    /// the column names of the plain-table size query (the root table itself holds no rows).
    /// The tuple counts are those of the chunks' row storage: rows in compressed chunks are not
    /// counted.
    public static let hypertableDetailedSize = """
        SELECT coalesce(sum(d.total_bytes), 0)::bigint AS total_bytes,
               coalesce(sum(d.table_bytes + coalesce(d.toast_bytes, 0)), 0)::bigint AS table_bytes,
               coalesce(sum(d.index_bytes), 0)::bigint AS index_bytes,
               (SELECT coalesce(sum(s.n_dead_tup), 0)::bigint FROM show_chunks($1::regclass) c
                  JOIN pg_stat_user_tables s ON s.relid = c) AS dead_tuples,
               (SELECT coalesce(sum(s.n_live_tup), 0)::bigint FROM show_chunks($1::regclass) c
                  JOIN pg_stat_user_tables s ON s.relid = c) AS live_tuples
          FROM hypertable_detailed_size($1::regclass) d
        """

    /// The chunks of hypertable $1 (the quoted name) as tables, oldest first: `vacuum` with
    /// `reindex` estimates their indexes (REINDEX of a hypertable's index is refused, and
    /// its own indexes are empty).
    public static let chunkTables = """
        SELECT c.oid::bigint AS oid, n.nspname AS schema, c.relname AS name,
               format('%I.%I', n.nspname, c.relname) AS quoted
          FROM show_chunks($1::regclass) AS s(chunk)
          JOIN pg_class c ON c.oid = s.chunk
          JOIN pg_namespace n ON n.oid = c.relnamespace
         ORDER BY c.oid
        """

    /// Drops the chunks of hypertable $1 whose whole range lies before the cutoff date $2
    /// (New York midnight for a timestamptz dimension); returns how many went. Chunks that
    /// straddle the cutoff stay: drop_chunks never deletes single rows.
    public static func dropChunks(columnType: String) -> String {
        "SELECT count(*) AS chunks FROM drop_chunks($1::regclass, older_than => \(RetentionSQL.cutoff(parameter: "$2", columnType: columnType)))"
    }

    /// Counts what `dropChunks` would drop: `chunks`, and the `rows` in them (each chunk
    /// counted through its own table, compressed ones included). Run before the drop, and for
    /// the dry run.
    public static func countDroppableChunks(columnType: String) -> String {
        """
        SELECT count(*) AS chunks,
               coalesce(sum((xpath('/row/n/text()',
                                   query_to_xml(format('SELECT count(*) AS n FROM %s', s.chunk), false, true, '')))[1]::text::bigint), 0)::bigint AS rows
          FROM show_chunks($1::regclass, older_than => \(RetentionSQL.cutoff(parameter: "$2", columnType: columnType))) AS s(chunk)
        """
    }

    /// Turns compression on for a hypertable, segmented by `segmentBy` (when the table has that
    /// column) and ordered by its time column, newest first, then by `thenBy` (the rest of the
    /// primary key, so an upsert into a compressed chunk finds its batch by the compressed
    /// data's metadata; TimescaleDB warns about a unique-key column left out). All names must
    /// come quoted from the catalog (`quote_ident`); they are embedded as string literals.
    public static func enableCompression(
        table quotedTable: String, segmentBy quotedSegment: String?, orderBy quotedTime: String, thenBy quotedRest: [String] = []
    ) -> String {
        var options = ["timescaledb.compress"]
        if let quotedSegment {
            options.append("timescaledb.compress_segmentby = \(PostgresSession.quoteLiteral(quotedSegment))")
        }
        let order = ([quotedTime + " DESC"] + quotedRest).joined(separator: ", ")
        options.append("timescaledb.compress_orderby = \(PostgresSession.quoteLiteral(order))")
        return "ALTER TABLE \(quotedTable) SET (\(options.joined(separator: ", ")))"
    }

    /// The primary key columns of table $1 (an oid), quoted, in key order; no row without one.
    public static let primaryKeyColumns = """
        SELECT quote_ident(a.attname) AS quoted
          FROM pg_index i
          CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = $1::oid AND i.indisprimary
         ORDER BY k.position
        """

    /// The chunks of hypertable $1 whose range ended more than $2 days ago and that need
    /// compressing, oldest first, as quoted names: those not compressed, and compressed ones
    /// that had rows written since (chunk status bits: 1 compressed, 2 unordered, 8 partial;
    /// `compress_chunk` recompresses those). `compressed` tells which kind each is.
    public static let chunksToCompress = """
        SELECT format('%I.%I', ch.chunk_schema, ch.chunk_name) AS chunk, (c.status & 1) = 1 AS compressed
          FROM show_chunks($1::regclass, older_than => make_interval(days => $2::int)) AS s(chunk)
          JOIN timescaledb_information.chunks ch
            ON format('%I.%I', ch.chunk_schema, ch.chunk_name)::regclass = s.chunk
          JOIN _timescaledb_catalog.chunk c ON c.schema_name = ch.chunk_schema AND c.table_name = ch.chunk_name
         WHERE (c.status & 1) = 0 OR (c.status & 10) <> 0
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
