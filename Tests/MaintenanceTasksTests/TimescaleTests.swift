import Foundation
import JobQueue
import LocalCluster
import MaintenanceTasks
import PostgresClient
import TestSupport
import XCTest

/// The TimescaleDB paths on a real TimescaleDB (checked with 2.28.3 on PostgreSQL 15). Every
/// test skips when the extension is not installed where the suite runs.
final class TimescaleTests: XCTestCase {
    override func setUp() async throws {
        try XCTSkipUnless(try TestCluster.timescaleAvailable(), "TimescaleDB is not installed for this PostgreSQL server")
    }

    /// Daily bars for 4 symbols over the last 401 New York days and 5-minute slots for the last
    /// 61 days (48 slots a day), through the migrated tables.
    private func seed(_ conn: PostgresConnection) async throws {
        try await conn.execute(
            """
            INSERT INTO market_data_daily (symbol, date, open, high, low, close, volume, vwap, trades_count)
            SELECT s, (now() AT TIME ZONE 'America/New_York')::date - d, 100 + d % 7, 101 + d % 7, 99 + d % 7, 100 + d % 5,
                   1000000 + d * 17, 100.5, 5000 + d
              FROM unnest(ARRAY['AAPL', 'MSFT', 'IBM', 'SPY']) s, generate_series(0, 400) d;
            INSERT INTO volume_slots (symbol, date, slot_index, volume)
            SELECT s, (now() AT TIME ZONE 'America/New_York')::date - d, slot, 1000 + slot * 3 + d
              FROM unnest(ARRAY['AAPL', 'MSFT', 'IBM', 'SPY']) s, generate_series(0, 60) d, generate_series(0, 191, 4) slot;
            """)
    }

    private func int(_ conn: PostgresConnection, _ sql: String, _ parameters: [any PostgresBindable] = []) async throws -> Int {
        let value = try await conn.query(sql, parameters).first?.decode("n", as: Int.self)
        return try XCTUnwrap(value)
    }

    private func text(_ conn: PostgresConnection, _ sql: String, _ parameters: [any PostgresBindable] = []) async throws -> String? {
        try await conn.query(sql, parameters).first?["v"]
    }

    func testMigrationsMakeTheMarketDataTablesHypertables() async throws {
        let db = try TestCluster.timescaleDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let rows = try await conn.query(
            """
            SELECT d.hypertable_name AS t, d.column_name AS c, d.time_interval::text AS i
              FROM timescaledb_information.dimensions d ORDER BY 1
            """)
        XCTAssertEqual(rows.map { [$0["t"], $0["c"], $0["i"]] }, [
            ["market_data_daily", "date", "30 days"],
            ["volume_slots", "date", "7 days"],
        ])
        // The tables keep their keys and work as before: an upsert lands in a chunk.
        try await seed(conn)
        try await conn.execute(
            """
            INSERT INTO market_data_daily (symbol, date, open, high, low, close, volume)
            VALUES ('AAPL', (now() AT TIME ZONE 'America/New_York')::date, 1, 2, 0.5, 1.5, 42)
            ON CONFLICT (symbol, date) DO UPDATE SET volume = EXCLUDED.volume
            """)
        let rowCount = try await int(conn, "SELECT count(*) AS n FROM market_data_daily")
        XCTAssertEqual(rowCount, 4 * 401)
        let slotChunks = try await int(conn, "SELECT count(*) AS n FROM show_chunks('volume_slots')")
        XCTAssertGreaterThan(slotChunks, 8)
    }

    func testCompressEnablesCompressionAndCompressesOldChunksOnePerTransaction() async throws {
        let db = try TestCluster.timescaleDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await seed(conn)
        // A hypertable of the user's own, not configured: left alone.
        try await conn.execute(
            """
            CREATE TABLE user_events (at timestamptz NOT NULL, v int);
            SELECT create_hypertable('user_events', 'at', chunk_time_interval => interval '1 day');
            INSERT INTO user_events SELECT now() - g * interval '1 day', g FROM generate_series(1, 30) g;
            """)
        let old = "SELECT count(*) AS n FROM show_chunks($1::regclass, older_than => interval '7 days')"
        let expectedDaily = try await int(conn, old, ["market_data_daily"])
        let expectedSlots = try await int(conn, old, ["volume_slots"])
        XCTAssertGreaterThan(expectedDaily, 5)
        XCTAssertGreaterThan(expectedSlots, 3)
        let checksum = "SELECT count(*)::text || '/' || sum(volume)::text AS v FROM "
        let dailyBefore = try await text(conn, checksum + "market_data_daily")
        let slotsBefore = try await text(conn, checksum + "volume_slots")

        let result = try object(try await CompressTask().run(makeContext(url: db.url, task: "compress", args: #"{"older_than_days": 7}"#)))
        XCTAssertEqual(result["skipped"] as? Bool, false)
        let version = try await text(conn, "SELECT extversion AS v FROM pg_extension WHERE extname = 'timescaledb'")
        XCTAssertEqual(result["timescaledb_version"] as? String, version)
        let tables = try XCTUnwrap(result["tables"] as? [[String: Any]])
        XCTAssertEqual(tables.compactMap { $0["table"] as? String }, ["public.market_data_daily", "public.volume_slots"])
        XCTAssertEqual(tables.compactMap { $0["compression_enabled"] as? Bool }, [true, true])
        XCTAssertEqual(tables.compactMap { $0["chunks_compressed"] as? Int }, [expectedDaily, expectedSlots])
        XCTAssertEqual(tables.compactMap { $0["chunks_recompressed"] as? Int }, [0, 0])
        XCTAssertEqual(result["chunks_compressed"] as? Int, expectedDaily + expectedSlots)
        let slots = try XCTUnwrap(tables.last)
        XCTAssertLessThan(try XCTUnwrap(slots["bytes_after"] as? Int), try XCTUnwrap(slots["bytes_before"] as? Int))
        XCTAssertEqual(result["bytes_before"] as? Int, tables.reduce(0) { $0 + ($1["bytes_before"] as? Int ?? 0) })
        XCTAssertEqual(result["bytes_after"] as? Int, tables.reduce(0) { $0 + ($1["bytes_after"] as? Int ?? 0) })

        // Segmented by symbol, ordered by the time column newest first, then the rest of the key.
        let settings = try await conn.query(
            """
            SELECT hypertable::text AS t, segmentby AS s, orderby AS o FROM timescaledb_information.hypertable_compression_settings
             WHERE hypertable::text <> 'user_events' ORDER BY 1
            """)
        XCTAssertEqual(settings.map { [$0["t"], $0["s"], $0["o"]] }, [
            ["market_data_daily", "symbol", "date DESC"],
            ["volume_slots", "symbol", "date DESC,slot_index"],
        ])
        // Exactly the chunks past the threshold are compressed, each in a transaction of its own.
        let wrong = try await int(conn,
            """
            SELECT count(*) AS n FROM timescaledb_information.chunks ch
             WHERE ch.hypertable_name <> 'user_events'
               AND ch.is_compressed <> (format('%I.%I', ch.chunk_schema, ch.chunk_name)::regclass IN (
                     SELECT show_chunks(format('%I.%I', ch.hypertable_schema, ch.hypertable_name)::regclass,
                                        older_than => interval '7 days')))
            """)
        XCTAssertEqual(wrong, 0)
        let transactions = try await int(conn,
            """
            SELECT count(DISTINCT c.xmin::text) AS n FROM _timescaledb_catalog.chunk c
              JOIN timescaledb_information.chunks ch ON ch.chunk_schema = c.schema_name AND ch.chunk_name = c.table_name
             WHERE ch.is_compressed
            """)
        XCTAssertEqual(transactions, expectedDaily + expectedSlots)
        // The data reads back the same.
        let dailyAfter = try await text(conn, checksum + "market_data_daily")
        let slotsAfter = try await text(conn, checksum + "volume_slots")
        XCTAssertEqual(dailyAfter, dailyBefore)
        XCTAssertEqual(slotsAfter, slotsBefore)

        // A second run finds nothing to do.
        let again = try object(try await CompressTask().run(makeContext(url: db.url, task: "compress", args: #"{"older_than_days": 7}"#)))
        XCTAssertEqual(again["chunks_compressed"] as? Int, 0)
        let againTables = try XCTUnwrap(again["tables"] as? [[String: Any]])
        XCTAssertEqual(againTables.compactMap { $0["compression_enabled"] as? Bool }, [false, false])
        let userEvents = try await conn.query(
            """
            SELECT h.compression_enabled::text || ', ' || count(*) FILTER (WHERE ch.is_compressed) || ' compressed' AS v
              FROM timescaledb_information.hypertables h
              JOIN timescaledb_information.chunks ch ON ch.hypertable_name = h.hypertable_name
             WHERE h.hypertable_name = 'user_events' GROUP BY h.compression_enabled
            """).first?["v"]
        XCTAssertEqual(userEvents, "false, 0 compressed")

        // Configured tables that are missing or not hypertables are reported, not fatal.
        let listedSettings = CompressSettings(tables: ["market_data_daily", "nope", "ticker_universe"])
        let listed = try object(try await CompressTask(settings: listedSettings).run(makeContext(url: db.url, task: "compress")))
        XCTAssertEqual((listed["tables"] as? [[String: Any]])?.compactMap { $0["table"] as? String }, ["public.market_data_daily"])
        let skipped = try XCTUnwrap(listed["skipped_tables"] as? [[String: Any]])
        XCTAssertEqual(skipped.map { "\($0["table"] ?? ""): \($0["reason"] ?? "")" },
                       ["nope: table does not exist", "ticker_universe: not a hypertable"])
    }

    func testCompressRecompressesChunksWrittenToAfterCompression() async throws {
        let db = try TestCluster.timescaleDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await seed(conn)
        _ = try await CompressTask().run(makeContext(url: db.url, task: "compress"))
        // ohlc_daily's upsert of a late correction and a new symbol into a compressed chunk.
        try await conn.execute(
            """
            INSERT INTO market_data_daily (symbol, date, open, high, low, close, volume)
            VALUES ('AAPL', (now() AT TIME ZONE 'America/New_York')::date - 100, 1, 2, 0.5, 1.5, 42),
                   ('NVDA', (now() AT TIME ZONE 'America/New_York')::date - 100, 1, 2, 0.5, 1.5, 43)
            ON CONFLICT (symbol, date) DO UPDATE SET volume = EXCLUDED.volume
            """)
        let partial = "SELECT count(*) AS n FROM _timescaledb_catalog.chunk WHERE (status & 8) <> 0"
        let partialBefore = try await int(conn, partial)
        XCTAssertEqual(partialBefore, 1)
        let result = try object(try await CompressTask().run(makeContext(url: db.url, task: "compress")))
        let tables = try XCTUnwrap(result["tables"] as? [[String: Any]])
        XCTAssertEqual(tables.compactMap { $0["chunks_compressed"] as? Int }, [1, 0])
        XCTAssertEqual(tables.compactMap { $0["chunks_recompressed"] as? Int }, [1, 0])
        let partialAfter = try await int(conn, partial)
        XCTAssertEqual(partialAfter, 0)
        let corrected = try await conn.query(
            """
            SELECT string_agg(symbol || '=' || volume::text, ',' ORDER BY symbol) AS v FROM market_data_daily
             WHERE date = (now() AT TIME ZONE 'America/New_York')::date - 100 AND symbol IN ('AAPL', 'NVDA')
            """).first?["v"]
        XCTAssertEqual(corrected, "AAPL=42,NVDA=43")
    }

    func testCompressGivesUpOnALockAfterLockTimeoutAndKeepsTheChunksDone() async throws {
        let db = try TestCluster.timescaleDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await seed(conn)
        let settings = CompressSettings(lockTimeoutMilliseconds: 200)

        // A long report query holds ACCESS SHARE on the hypertable: turning compression on
        // (ACCESS EXCLUSIVE) gives up instead of queueing every later reader behind itself.
        let holder = try await PostgresConnection.connect(db.url)
        try await holder.execute("BEGIN; SELECT count(*) FROM market_data_daily")
        do {
            _ = try await CompressTask(settings: settings).run(makeContext(url: db.url, task: "compress"))
            XCTFail("compression went on while the table was locked")
        } catch let MaintenanceError.database(operation, error) {
            XCTAssertEqual(error.sqlState, "55P03")
            XCTAssertTrue(operation.contains("enabling compression on public.market_data_daily"), operation)
            XCTAssertTrue(operation.contains("compress.lock_timeout_ms = 200"), operation)
        }
        try await holder.execute("COMMIT")

        // An open write on the third-oldest old chunk (ROW EXCLUSIVE) blocks compressing it:
        // the two chunks before it stay compressed, the task fails naming the chunk.
        let chunks = try await conn.query(
            """
            SELECT s::text AS v FROM show_chunks('market_data_daily', older_than => interval '7 days') s
              JOIN timescaledb_information.chunks ch ON format('%I.%I', ch.chunk_schema, ch.chunk_name)::regclass = s
             ORDER BY ch.range_start
            """).compactMap { $0["v"] }
        XCTAssertGreaterThan(chunks.count, 3)
        try await holder.execute("BEGIN; LOCK TABLE \(chunks[2]) IN ROW EXCLUSIVE MODE")
        do {
            _ = try await CompressTask(settings: settings).run(makeContext(url: db.url, task: "compress"))
            XCTFail("a locked chunk was compressed")
        } catch let MaintenanceError.database(operation, error) {
            XCTAssertEqual(error.sqlState, "55P03")
            XCTAssertTrue(operation.contains("compressing chunk \(chunks[2]) of public.market_data_daily"), operation)
        }
        try await holder.execute("COMMIT")
        let compressed = try await conn.query(
            """
            SELECT format('%I.%I', chunk_schema, chunk_name) AS v FROM timescaledb_information.chunks
             WHERE hypertable_name = 'market_data_daily' AND is_compressed ORDER BY range_start
            """).compactMap { $0["v"] }
        XCTAssertEqual(compressed, Array(chunks.prefix(2)))

        // Once the lock is gone, the next run does the rest.
        let result = try object(try await CompressTask(settings: settings).run(makeContext(url: db.url, task: "compress")))
        let tables = try XCTUnwrap(result["tables"] as? [[String: Any]])
        XCTAssertEqual(tables.first?["chunks_compressed"] as? Int, chunks.count - 2)
    }

    func testRetentionDropsOnlyChunksEntirelyPastTheCutoff() async throws {
        let db = try TestCluster.timescaleDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await seed(conn)
        // Compressed chunks are dropped like the others.
        _ = try await CompressTask().run(makeContext(url: db.url, task: "compress"))
        let cutoffText = try await text(conn, "SELECT ((now() AT TIME ZONE 'America/New_York')::date - 200)::text AS v")
        let cutoff = try XCTUnwrap(cutoffText)
        let inWindow = "SELECT count(*)::text || '/' || sum(volume)::text AS v FROM market_data_daily WHERE date >= $1::date"
        let keptBefore = try await text(conn, inWindow, [cutoff])
        let droppable = try await int(conn, "SELECT count(*) AS n FROM show_chunks('market_data_daily', older_than => $1::date)", [cutoff])
        XCTAssertGreaterThan(droppable, 3)
        let rowsBefore = try await int(conn, "SELECT count(*) AS n FROM market_data_daily")

        let dry = try object(try await RetentionTask().run(
            makeContext(url: db.url, task: "retention", args: #"{"tables": ["market_data_daily"], "dry_run": true}"#)))
        let dryTable = try XCTUnwrap((dry["tables"] as? [[String: Any]])?.first)
        XCTAssertEqual(dryTable["method"] as? String, "count")
        XCTAssertEqual(dryTable["chunks"] as? Int, droppable)
        let wouldGo = try XCTUnwrap(dryTable["rows_removed"] as? Int)
        XCTAssertGreaterThan(wouldGo, 0)
        let afterDryRun = try await int(conn, "SELECT count(*) AS n FROM market_data_daily")
        XCTAssertEqual(afterDryRun, 4 * 401)

        let result = try object(try await RetentionTask().run(
            makeContext(url: db.url, task: "retention", args: #"{"tables": ["market_data_daily"]}"#)))
        let table = try XCTUnwrap((result["tables"] as? [[String: Any]])?.first)
        XCTAssertEqual(table["method"] as? String, "drop_chunks")
        XCTAssertEqual(table["chunks"] as? Int, droppable)
        // The rows of the dropped chunks are counted, compressed ones included.
        let rowsAfter = try await int(conn, "SELECT count(*) AS n FROM market_data_daily")
        XCTAssertEqual(table["rows_removed"] as? Int, rowsBefore - rowsAfter)
        XCTAssertEqual(table["rows_removed"] as? Int, wouldGo)
        XCTAssertEqual(result["total_rows_removed"] as? Int, wouldGo)
        XCTAssertEqual(table["cutoff"] as? String, cutoff)
        XCTAssertTrue((table["note"] as? String ?? "").contains("only chunks whose whole time range is before the cutoff"))
        // Every row in the window stays; older rows stay only in the chunk that straddles the
        // cutoff (30-day chunks), and no chunk entirely past it is left.
        let keptAfter = try await text(conn, inWindow, [cutoff])
        XCTAssertEqual(keptAfter, keptBefore)
        let oldest = try await text(conn, "SELECT min(date)::text AS v FROM market_data_daily")
        let chunkBeforeCutoff = try await text(conn, "SELECT ($1::date - 30)::text AS v", [cutoff])
        XCTAssertLessThanOrEqual(try XCTUnwrap(oldest), cutoff)
        XCTAssertGreaterThan(try XCTUnwrap(oldest), try XCTUnwrap(chunkBeforeCutoff))
        let leftOver = try await int(conn, "SELECT count(*) AS n FROM show_chunks('market_data_daily', older_than => $1::date)", [cutoff])
        XCTAssertEqual(leftOver, 0)
    }

    func testRetentionOnANonTimeColumnOrWithAFilterKeepsEveryInWindowRowOfAHypertable() async throws {
        let db = try TestCluster.timescaleDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await seed(conn)
        // updated_at is not the time dimension: rows loaded long ago carry an old updated_at.
        try await conn.execute(
            """
            UPDATE market_data_daily SET updated_at = CASE WHEN date < (now() AT TIME ZONE 'America/New_York')::date - 250
                                                           THEN now() - interval '300 days' ELSE now() END
            """)
        let cutoffText = try await text(conn, "SELECT ((now() AT TIME ZONE 'America/New_York')::date - 30)::text AS v")
        let cutoff = try XCTUnwrap(cutoffText)
        let dailyKept = "SELECT count(*)::text || '/' || sum(volume)::text AS v FROM market_data_daily WHERE updated_at >= now() - interval '200 days'"
        let slotsKept = "SELECT count(*)::text || '/' || sum(volume)::text AS v FROM volume_slots WHERE symbol <> 'AAPL' OR date >= $1::date"
        let dailyBefore = try await text(conn, dailyKept)
        let slotsBefore = try await text(conn, slotsKept, [cutoff])
        let expectedDaily = try await int(conn, "SELECT count(*) AS n FROM market_data_daily WHERE updated_at < now() - interval '200 days'")
        let expectedSlots = try await int(conn, "SELECT count(*) AS n FROM volume_slots WHERE symbol = 'AAPL' AND date < $1::date", [cutoff])
        XCTAssertGreaterThan(expectedDaily, 0)
        XCTAssertGreaterThan(expectedSlots, 0)
        let settings = RetentionSettings(rules: [
            RetentionRule(table: "market_data_daily", column: "updated_at", days: 200),
            RetentionRule(table: "volume_slots", column: "date", days: 30, filterColumn: "symbol", filterValues: ["AAPL"]),
        ], batchSize: 100)
        let result = try object(try await RetentionTask(settings: settings).run(makeContext(url: db.url, task: "retention")))
        let tables = try XCTUnwrap(result["tables"] as? [[String: Any]])
        XCTAssertEqual(tables.compactMap { $0["method"] as? String }, ["batched_delete", "batched_delete"])
        XCTAssertEqual(tables.compactMap { $0["rows_removed"] as? Int }, [expectedDaily, expectedSlots])
        let dailyAfter = try await text(conn, dailyKept)
        let slotsAfter = try await text(conn, slotsKept, [cutoff])
        XCTAssertEqual(dailyAfter, dailyBefore)
        XCTAssertEqual(slotsAfter, slotsBefore)
        let left = try await int(conn, "SELECT count(*) AS n FROM market_data_daily WHERE updated_at < now() - interval '200 days'")
        XCTAssertEqual(left, 0)
    }

    func testVacuumOfAHypertableVacuumsAndReindexesEveryChunkAndSumsTheirSizes() async throws {
        let db = try TestCluster.timescaleDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await seed(conn)
        try await conn.execute("DELETE FROM volume_slots WHERE slot_index % 8 = 0")
        let remaining = try await int(conn, "SELECT count(*) AS n FROM volume_slots")
        let settings = VacuumSettings(reindexBloatThreshold: 0.3, reindexMinimumBytes: 0)
        let result = try object(try await VacuumTask(settings: settings).run(
            makeContext(url: db.url, task: "vacuum", args: #"{"tables": ["volume_slots"], "reindex": true}"#)))
        let table = try XCTUnwrap((result["tables"] as? [[String: Any]])?.first)
        XCTAssertEqual(table["table"] as? String, "public.volume_slots")
        let after = try XCTUnwrap(table["after"] as? [String: Any])
        let hypertableSize = try await int(conn, "SELECT hypertable_size('volume_slots') AS n")
        XCTAssertEqual(after["total_bytes"] as? Int, hypertableSize)
        XCTAssertGreaterThan(try XCTUnwrap(after["index_bytes"] as? Int), 0)
        XCTAssertEqual(after["live_tuples"] as? Int, remaining)
        XCTAssertEqual(after["dead_tuples"] as? Int, 0)
        // VACUUM (ANALYZE) of the hypertable reached every chunk.
        let unvacuumed = try await int(conn,
            """
            SELECT count(*) AS n FROM show_chunks('volume_slots') c
              LEFT JOIN pg_stat_user_tables s ON s.relid = c
             WHERE s.last_vacuum IS NULL OR s.last_analyze IS NULL
            """)
        XCTAssertEqual(unvacuumed, 0)
        // Half of every chunk's primary key entries went: the chunks' indexes are rebuilt
        // concurrently (the hypertable's own indexes are empty and cannot be reindexed).
        let reindexed = try XCTUnwrap(result["reindexed"] as? [[String: Any]])
        let chunkKeys = reindexed.filter { ($0["index"] as? String ?? "").hasSuffix("volume_slots_pkey") }
        let chunkCount = try await int(conn, "SELECT count(*) AS n FROM show_chunks('volume_slots')")
        XCTAssertEqual(chunkKeys.count, chunkCount, "\(reindexed)")
        XCTAssertTrue(reindexed.allSatisfy { ($0["index"] as? String ?? "").hasPrefix("_timescaledb_internal.") }, "\(reindexed)")
        XCTAssertTrue(chunkKeys.allSatisfy { ($0["bytes_after"] as? Int ?? 0) < ($0["bytes_before"] as? Int ?? 0) }, "\(chunkKeys)")
        let invalid = try await int(conn,
            "SELECT count(*) AS n FROM pg_index WHERE indrelid IN (SELECT show_chunks('volume_slots')) AND NOT indisvalid")
        XCTAssertEqual(invalid, 0)
    }

    func testApacheLicensedBuildSkipsCompressionAndStillDropsChunks() async throws {
        // The licence can only be set in the server's configuration: a cluster of its own.
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("closebell-apache-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let cluster = try LocalCluster(directory: directory)
        defer { cluster.destroy() }
        try cluster.start()
        let conf = try FileHandle(forWritingTo: cluster.dataDirectory.appendingPathComponent("postgresql.conf"))
        conf.seekToEndOfFile()
        conf.write(Data("timescaledb.license = 'apache'\n".utf8))
        try conf.close()
        try cluster.restart()
        let db = try TestCluster.timescaleDatabase(on: cluster)
        let conn = try await PostgresConnection.connect(db.url)
        let license = try await conn.query("SHOW timescaledb.license").first?["timescaledb.license"]
        XCTAssertEqual(license, "apache")
        try await seed(conn)
        let result = try object(try await CompressTask().run(makeContext(url: db.url, task: "compress")))
        XCTAssertEqual(result["skipped"] as? Bool, true)
        XCTAssertEqual(result["reason"] as? String,
                       "timescaledb is the Apache-2 licensed build (timescaledb.license = apache); compression needs the community license")
        XCTAssertNotNil(result["timescaledb_version"] as? String)
        // Hypertables and drop_chunks are Apache-licensed: retention works the same.
        let retention = try object(try await RetentionTask().run(
            makeContext(url: db.url, task: "retention", args: #"{"tables": ["volume_slots"]}"#)))
        let table = try XCTUnwrap((retention["tables"] as? [[String: Any]])?.first)
        XCTAssertEqual(table["method"] as? String, "drop_chunks")
        XCTAssertGreaterThan(try XCTUnwrap(table["chunks"] as? Int), 0)

    }
}
