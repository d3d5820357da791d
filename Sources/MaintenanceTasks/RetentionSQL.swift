/// The statements of the batched retention delete. They work on one physical table (a
/// "leaf": a plain table, a partition, an inheritance child or a chunk) at a time, because a
/// `ctid` is unique only inside one physical table: it repeats in every partition, child and
/// chunk, so matching by `ctid` through a parent would delete rows inside the window.
extension RetentionSQL {
    /// Every physical table that holds rows of the table with oid $1: the table itself when it
    /// is an ordinary table, and all its descendants in `pg_inherits` (partitions at every
    /// level, default partitions, inheritance children, TimescaleDB chunks) that are ordinary
    /// tables. Columns `oid`, `quoted` (`schema.name`, quoted), `relkind`; foreign-table
    /// descendants are listed (relkind `f`) so the task can say it leaves them alone.
    public static let leaves = """
        WITH RECURSIVE tree(oid) AS (
            SELECT $1::oid
            UNION
            SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid
        )
        SELECT c.oid::bigint AS oid, format('%I.%I', n.nspname, c.relname) AS quoted, c.relkind::text AS relkind
          FROM tree JOIN pg_class c ON c.oid = tree.oid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'f')
         ORDER BY c.oid
        """

    /// Deletes at most $2 rows of the one physical table `leaf` (`FROM ONLY`) older than cutoff
    /// $1 (and, with a filter, whose filter column's text is in $3), as one short statement.
    /// The condition is repeated outside the `ctid` list, so a row inside the window can never
    /// match, even if its `ctid` was in the list.
    public static func batchDelete(leaf: String, column: String, columnType: String, filterColumn: String?) -> String {
        let condition = condition(column: column, columnType: columnType, filterColumn: filterColumn)
        return "DELETE FROM ONLY \(leaf) WHERE ctid = ANY(ARRAY(SELECT ctid FROM ONLY \(leaf) WHERE \(condition) LIMIT $2)) AND \(condition)"
    }

    /// The compressed chunks of hypertable $1 (schema) . $2 (name), quoted: their rows are not
    /// in the chunk's own heap, so `FROM ONLY chunk` and `ctid` cannot reach them.
    public static let compressedChunks = """
        SELECT format('%I.%I', chunk_schema, chunk_name) AS quoted FROM timescaledb_information.chunks
         WHERE hypertable_schema = $1 AND hypertable_name = $2 AND is_compressed
        """

    /// Deletes the rows of one compressed TimescaleDB chunk older than cutoff $1 (filter values
    /// $2) in one statement: TimescaleDB decompresses the batches concerned and deletes from
    /// them (bounded by the chunk and by `timescaledb.max_tuples_decompressed_per_dml_transaction`).
    public static func compressedChunkDelete(chunk: String, column: String, columnType: String, filterColumn: String?) -> String {
        "DELETE FROM \(chunk) WHERE \(condition(column: column, columnType: columnType, filterColumn: filterColumn, filterParameter: "$2"))"
    }

    /// Counts the rows of the physical table `leaf` a run would delete (dry run): cutoff $1,
    /// filter values $2. `compressed`: a compressed chunk, counted through TimescaleDB's
    /// decompression as its delete sees it.
    public static func count(leaf: String, column: String, columnType: String, filterColumn: String?, compressed: Bool = false) -> String {
        let only = compressed ? "" : "ONLY "
        return "SELECT count(*) AS n FROM \(only)\(leaf) WHERE \(condition(column: column, columnType: columnType, filterColumn: filterColumn, filterParameter: "$2"))"
    }

    /// Deletes every row past the cutoff $1 in one statement (the benchmark's baseline).
    public static func singleDelete(table: String, column: String, columnType: String) -> String {
        "DELETE FROM \(table) WHERE \(condition(column: column, columnType: columnType, filterColumn: nil))"
    }

    /// The partitions (at any level) of table $1 that hold only rows before the cutoff $3:
    /// partitions of a range on the single column $2 whose upper bound is at or before the
    /// cutoff (never a default partition, never MINVALUE/MAXVALUE), the topmost such one of each
    /// branch. Column `quoted`.
    public static func droppablePartitions(columnType: String) -> String {
        """
        WITH candidates AS (
            SELECT t.relid, t.parentrelid, format('%I.%I', n.nspname, c.relname) AS quoted
              FROM pg_partition_tree($1::oid::regclass) t
              JOIN pg_class c ON c.oid = t.relid
              JOIN pg_namespace n ON n.oid = c.relnamespace
              JOIN pg_partitioned_table pt ON pt.partrelid = t.parentrelid
              LEFT JOIN pg_attribute a ON a.attrelid = t.parentrelid AND a.attnum = pt.partattrs[0]
             WHERE t.relid <> $1::oid
               -- CASE: the bound is cast only for a range on the rule's (date or time) column.
               AND CASE WHEN pt.partstrat = 'r' AND pt.partnatts = 1 AND pt.partexprs IS NULL AND a.attname = $2
                        THEN (substring(pg_get_expr(c.relpartbound, c.oid) from 'TO \\(''([^'']*)''\\)'))::\(columnType)
                             <= \(cutoff(parameter: "$3", columnType: columnType))
                        ELSE false END
        )
        SELECT quoted FROM candidates WHERE parentrelid NOT IN (SELECT relid FROM candidates) ORDER BY quoted
        """
    }

    /// The New York date `days` ($1) before today, as text: today is $2 when given (a
    /// `YYYY-MM-DD` New York date), else the server's current date in New York.
    public static let cutoffDate = """
        SELECT (coalesce($2::date, (now() AT TIME ZONE 'America/New_York')::date) - $1::int)::text AS cutoff
        """

    /// `column < cutoff($1)` and, with a filter, `filter::text = ANY(filterParameter)`.
    static func condition(column: String, columnType: String, filterColumn: String?, filterParameter: String = "$3") -> String {
        var text = "\(column) < \(cutoff(parameter: "$1", columnType: columnType))"
        if let filterColumn { text += " AND \(filterColumn)::text = ANY(\(filterParameter)::text[])" }
        return text
    }
}
