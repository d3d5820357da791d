-- closebell: every TimescaleDB statement it runs, documented (reference only: do not run this file).
--
-- The exact texts live in Sources/MaintenanceTasks/TimescaleSQL.swift; this file explains them.
-- None runs unless the first query finds the extension, so plain PostgreSQL never sees them.
-- $1, $2 are bound parameters; <table>, <chunk>, <time col> are names taken from the catalog and
-- quoted by the server (format('%I.%I')), never from user input as typed.

-- 1. Detection (retention, vacuum, compress).
SELECT extversion AS version FROM pg_extension WHERE extname = 'timescaledb';

-- 2. Is a table a hypertable, and what is its time column? (retention, vacuum)
SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables h
                WHERE h.hypertable_schema = $1 AND h.hypertable_name = $2) AS hyper;
SELECT d.column_name FROM timescaledb_information.dimensions d
 WHERE d.hypertable_schema = $1 AND d.hypertable_name = $2 AND d.dimension_number = 1;

-- 3. retention on a hypertable whose time column is the retention column: drop whole chunks.
--    $2 is the cutoff date (today in New York minus the window). For a timestamptz column the
--    cutoff is New York midnight: ($2::date::timestamp AT TIME ZONE 'America/New_York').
--    drop_chunks removes only chunks whose entire range is before the cutoff; rows in a chunk
--    straddling it stay until the chunk is entirely past it (so up to one chunk interval longer
--    than the window). The task's result says so.
SELECT count(*) AS chunks FROM drop_chunks($1::regclass, older_than => $2::date);
--    dry_run: what would go.
SELECT count(*) AS chunks FROM show_chunks($1::regclass, older_than => $2::date);
--    A hypertable whose retention column is not its time dimension, or a rule with a filter
--    (maintenance_jobs states), gets the plain batched DELETE instead.

-- 4. vacuum: sizes of a hypertable are the sums over its chunks (the root table is empty).
SELECT sum(d.total_bytes) AS total_bytes, sum(d.table_bytes + coalesce(d.toast_bytes, 0)) AS table_bytes,
       sum(d.index_bytes) AS index_bytes
  FROM hypertable_detailed_size($1::regclass) d;
--    VACUUM (ANALYZE) <hypertable> recurses into the chunks by itself.

-- 5. compress.
--    5a. The Apache-2 build has no compression: the task succeeds with skipped = true.
SHOW timescaledb.license;          -- 'apache' → skipped; 'timescale' → continue
--    5b. Hypertables and whether compression is on.
SELECT h.hypertable_schema, h.hypertable_name, format('%I.%I', h.hypertable_schema, h.hypertable_name),
       h.compression_enabled
  FROM timescaledb_information.hypertables h ORDER BY 1, 2;
--    5c. Turn compression on where it is off: segmented by symbol (when the table has that
--        column, so each symbol's rows compress together and per-symbol queries read one
--        segment), ordered by the time column newest first. Still valid in 2.18+ (the
--        columnstore options are aliases).
ALTER TABLE <table> SET (timescaledb.compress,
                         timescaledb.compress_segmentby = 'symbol',
                         timescaledb.compress_orderby = '<time col> DESC');
--    5d. Uncompressed chunks whose range ended more than N days ago (default 7), oldest first.
SELECT s.chunk::text AS chunk
  FROM show_chunks($1::regclass, older_than => make_interval(days => $2::int)) AS s(chunk)
  JOIN timescaledb_information.chunks ch
    ON format('%I.%I', ch.chunk_schema, ch.chunk_name)::regclass = s.chunk
 WHERE NOT ch.is_compressed
 ORDER BY ch.range_start;
--    5e. One statement per chunk, so one short transaction per chunk (a failure or cancellation
--        keeps the chunks already done). Before 2.18:
SELECT compress_chunk('<chunk>'::regclass, if_not_compressed => true);
--        2.18 and later (compress_chunk is deprecated there):
CALL convert_to_columnstore('<chunk>'::regclass, if_not_columnstore => true);
--    5f. Size before and after, for the result.
SELECT hypertable_size($1::regclass) AS bytes;
