-- closebell: every TimescaleDB statement it runs, documented (reference only: do not run this file).
--
-- The exact texts live in Sources/MaintenanceTasks/TimescaleSQL.swift; this file explains them.
-- None runs unless the first query finds the extension, so plain PostgreSQL never sees them.
-- Checked against TimescaleDB 2.28.3 on PostgreSQL 15 (Tests/*/Timescale*Tests.swift).
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
--    Before the drop, and for dry_run: what would go, chunks and the rows in them (each chunk
--    counted through its own table, so compressed chunks count their rows too).
SELECT count(*) AS chunks,
       sum((xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %s', s.chunk), false, true, '')))[1]::text::bigint) AS rows
  FROM show_chunks($1::regclass, older_than => $2::date) AS s(chunk);
--    A hypertable whose retention column is not its time dimension, or a rule with a filter
--    (maintenance_jobs states), gets the plain batched DELETE instead.

-- 4. vacuum: sizes and tuple counts of a hypertable are the sums over its chunks (the root
--    table is empty; rows inside compressed chunks are not in the tuple counts).
SELECT sum(d.total_bytes) AS total_bytes, sum(d.table_bytes + coalesce(d.toast_bytes, 0)) AS table_bytes,
       sum(d.index_bytes) AS index_bytes,
       (SELECT sum(s.n_dead_tup) FROM show_chunks($1::regclass) c JOIN pg_stat_user_tables s ON s.relid = c) AS dead_tuples,
       (SELECT sum(s.n_live_tup) FROM show_chunks($1::regclass) c JOIN pg_stat_user_tables s ON s.relid = c) AS live_tuples
  FROM hypertable_detailed_size($1::regclass) d;
--    VACUUM (ANALYZE) <hypertable> recurses into the chunks by itself.
--    With {"reindex": true}: REINDEX of a hypertable's index is refused ("reindexing of a
--    specific index on a hypertable is unsupported") and its own indexes are empty, so the
--    bloat estimate and REINDEX INDEX CONCURRENTLY apply to the indexes of each chunk:
SELECT c.oid, format('%I.%I', n.nspname, c.relname)
  FROM show_chunks($1::regclass) AS s(chunk)
  JOIN pg_class c ON c.oid = s.chunk JOIN pg_namespace n ON n.oid = c.relnamespace;

-- 5. compress.
--    5a. The Apache-2 build has no compression: the task succeeds with skipped = true.
SHOW timescaledb.license;          -- 'apache' → skipped; 'timescale' → continue
--    5b. Each table of compress.tables (default market_data_daily, volume_slots; other
--        hypertables are left alone): is it a hypertable, and is compression on? No row: it is
--        reported in skipped_tables. The time column comes from query 2.
SELECT h.compression_enabled FROM timescaledb_information.hypertables h
 WHERE h.hypertable_schema = $1 AND h.hypertable_name = $2;
--    5c. Turn compression on where it is off: segmented by symbol (when the table has that
--        column, so each symbol's rows compress together and per-symbol queries read one
--        segment), ordered by the time column newest first, then by the rest of the primary key
--        (TimescaleDB 2.28 warns 'column "slot_index" should be used for segmenting or ordering'
--        otherwise: an upsert into a compressed chunk finds its batch by these columns). Still
--        valid in 2.18+ (the columnstore options are aliases).
SELECT quote_ident(a.attname) FROM pg_index i
 CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
 WHERE i.indrelid = $1::oid AND i.indisprimary ORDER BY k.position;
ALTER TABLE <table> SET (timescaledb.compress,
                         timescaledb.compress_segmentby = 'symbol',
                         timescaledb.compress_orderby = '<time col> DESC[, <other key columns>]');
--        market_data_daily: 'date DESC'; volume_slots: 'date DESC, slot_index'.
--    5d. Every compression statement below runs under lock_timeout (compress.lock_timeout_ms,
--        default 5000 ms; 0 waits forever). ALTER TABLE … SET (timescaledb.compress) needs an
--        ACCESS EXCLUSIVE lock on the hypertable, compressing a chunk an EXCLUSIVE lock on the
--        chunk: waiting behind a long transaction would queue every later reader behind the
--        waiting statement, so it gives up instead (SQLSTATE 55P03) and the job fails naming the
--        table or chunk; chunks compressed before stay compressed, the retry does the rest.
SET lock_timeout = 5000;
--    5e. Chunks whose range ended more than N days ago (default 7) that need compressing,
--        oldest first: never compressed, or compressed and written to since (status bits:
--        1 compressed, 2 unordered, 8 partial; ohlc_daily's 30-day reload leaves recent
--        compressed chunks partial). compress_chunk recompresses the latter.
SELECT format('%I.%I', ch.chunk_schema, ch.chunk_name) AS chunk, (c.status & 1) = 1 AS compressed
  FROM show_chunks($1::regclass, older_than => make_interval(days => $2::int)) AS s(chunk)
  JOIN timescaledb_information.chunks ch
    ON format('%I.%I', ch.chunk_schema, ch.chunk_name)::regclass = s.chunk
  JOIN _timescaledb_catalog.chunk c ON c.schema_name = ch.chunk_schema AND c.table_name = ch.chunk_name
 WHERE (c.status & 1) = 0 OR (c.status & 10) <> 0
 ORDER BY ch.range_start;
--    5f. One statement per chunk, so one short transaction per chunk (a failure or cancellation
--        keeps the chunks already done). Before 2.18:
SELECT compress_chunk('<chunk>'::regclass, if_not_compressed => true);
--        2.18 and later (compress_chunk is deprecated there):
CALL convert_to_columnstore('<chunk>'::regclass, if_not_columnstore => true);
--    5g. Size before and after, for the result (chunks, compressed data and indexes).
SELECT hypertable_size($1::regclass) AS bytes;

-- 6. backup restore (Sources/Backup/BackupCatalog.swift), when the server has TimescaleDB and
--    the dump creates the extension: in the new temporary database, before the load
CREATE EXTENSION IF NOT EXISTS timescaledb;
SELECT timescaledb_pre_restore();
--    after the load
SELECT timescaledb_post_restore();
--    and after the swap into the target's name: ALTER DATABASE … RENAME stops the renamed
--    database's scheduler (TimescaleDB warns "you need to manually restart any running
--    background workers after this command"), so in the restored database:
DO $$ BEGIN
    IF to_regproc('_timescaledb_functions.start_background_workers') IS NOT NULL THEN
        PERFORM _timescaledb_functions.start_background_workers();
    ELSE
        PERFORM _timescaledb_internal.start_background_workers();   -- before 2.12
    END IF;
END $$;

-- 7. Tests only (Tests/TestSupport): a private test cluster preloads the extension when it is
--    installed (shared_preload_libraries = 'timescaledb', timescaledb.telemetry_level = off,
--    and max_worker_processes = 64, timescaledb.max_background_workers = 56: every database
--    with the extension keeps a scheduler, and a test run makes dozens), and a TimescaleDB test
--    database runs this before the migrations:
CREATE EXTENSION IF NOT EXISTS timescaledb;
--    The migrated template the other tests copy is closed to connections (as template0 is):
--    TimescaleDB's launcher restarts a scheduler on a template at every CREATE DATABASE …
--    TEMPLATE, which then fails with "source database is being accessed by other users".
ALTER DATABASE closebell_template WITH ALLOW_CONNECTIONS false;
