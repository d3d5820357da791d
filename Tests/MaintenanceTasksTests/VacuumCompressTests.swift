import Foundation
import JobQueue
import MaintenanceTasks
import PostgresClient
import TestSupport
import XCTest

final class VacuumCompressTests: XCTestCase {
    func testVacuumReportsSizesAndFreesTheEndOfATableWithDeadRows() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute(
            """
            CREATE TABLE bars (id int PRIMARY KEY, pad text NOT NULL);
            INSERT INTO bars SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;
            """)
        // Dead rows at the end of the table: VACUUM truncates those pages away.
        try await conn.execute("DELETE FROM bars WHERE id > 1000")
        let settings = VacuumSettings(reindexBloatThreshold: 0.3, reindexMinimumBytes: 0)
        let result = try object(try await VacuumTask(settings: settings).run(
            makeContext(url: db.url, task: "vacuum", args: #"{"tables": ["bars"], "reindex": true}"#)))
        let tables = try XCTUnwrap(result["tables"] as? [[String: Any]])
        XCTAssertEqual(tables.count, 1)
        let bars = try XCTUnwrap(tables.first)
        XCTAssertEqual(bars["table"] as? String, "public.bars")
        let before = try XCTUnwrap(bars["before"] as? [String: Any])
        let after = try XCTUnwrap(bars["after"] as? [String: Any])
        let totalBefore = try XCTUnwrap(before["total_bytes"] as? Int), totalAfter = try XCTUnwrap(after["total_bytes"] as? Int)
        let tableBefore = try XCTUnwrap(before["table_bytes"] as? Int), tableAfter = try XCTUnwrap(after["table_bytes"] as? Int)
        XCTAssertLessThan(tableAfter, tableBefore / 4)
        XCTAssertLessThan(totalAfter, totalBefore)
        XCTAssertEqual(bars["bytes_freed"] as? Int, totalBefore - totalAfter)
        XCTAssertEqual(after["dead_tuples"] as? Int, 0)
        XCTAssertEqual(after["live_tuples"] as? Int, 1000)
        XCTAssertNotNil(before["index_bytes"] as? Int)
        // The primary key kept the pages of 19,000 deleted entries: rebuilt concurrently.
        let reindexed = try XCTUnwrap(result["reindexed"] as? [[String: Any]])
        XCTAssertEqual(reindexed.first?["index"] as? String, "public.bars_pkey")
        let indexBefore = try XCTUnwrap(reindexed.first?["bytes_before"] as? Int)
        let indexAfter = try XCTUnwrap(reindexed.first?["bytes_after"] as? Int)
        XCTAssertLessThan(indexAfter, indexBefore)
        let valid = try await conn.query(
            "SELECT bool_and(indisvalid) AS ok, count(*) AS n FROM pg_index WHERE indrelid = 'bars'::regclass").first
        XCTAssertEqual(try valid?.decode("ok", as: Bool.self), true)
        XCTAssertEqual(try valid?.decode("n", as: Int.self), 1)
    }

    func testVacuumOfDefaultTablesSkipsMissingOnesAndRefusesUnknownArgs() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        // Migration 0002 (market data) may or may not be there: drop two of its tables either way.
        try await conn.execute("DROP TABLE IF EXISTS volume_slots, ticker_metadata")
        let result = try object(try await VacuumTask().run(makeContext(url: db.url, task: "vacuum")))
        let vacuumed = (result["tables"] as? [[String: Any]] ?? []).compactMap { $0["table"] as? String }
        XCTAssertTrue(vacuumed.contains("public.maintenance_jobs"))
        XCTAssertTrue(vacuumed.contains("public.maintenance_cycle_runs"))
        XCTAssertFalse(vacuumed.contains("public.volume_slots"))
        let skipped = (result["skipped"] as? [[String: Any]] ?? []).compactMap { $0["table"] as? String }
        XCTAssertEqual(skipped.filter { ["volume_slots", "ticker_metadata"].contains($0) }, ["volume_slots", "ticker_metadata"])
        do {
            _ = try await VacuumTask().run(makeContext(url: db.url, task: "vacuum", args: #"{"tables": ["nope"]}"#))
            XCTFail("unknown table accepted")
        } catch let error as MaintenanceError {
            XCTAssertEqual(error, .unknownTable("nope"))
        }
        do {
            _ = try await VacuumTask().run(makeContext(url: db.url, task: "vacuum", args: #"{"tables": ["bars; VACUUM FULL"]}"#))
            XCTFail("injection accepted")
        } catch let error as MaintenanceError {
            XCTAssertEqual(error, .invalidTableName("bars; VACUUM FULL"))
        }
    }

    func testBloatEstimate() {
        // 1,000 int4 keys: 1000 × 20 bytes need 3 leaf pages at 90 % fill; plus the metapage.
        XCTAssertEqual(VacuumTask.expectedBtreeBytes(tuples: 1000, keyWidth: 4, blockSize: 8192), 4 * 8192)
        XCTAssertEqual(VacuumTask.expectedBtreeBytes(tuples: 0, keyWidth: 4, blockSize: 8192), 8192)
        let million = VacuumTask.expectedBtreeBytes(tuples: 1_000_000, keyWidth: 4, blockSize: 8192)
        XCTAssertEqual(Double(million) / 8192, 2745, accuracy: 30)   // a fresh int4 pkey of 1M rows is 2,745 pages
    }

    func testCompressIsSkippedOnPlainPostgreSQL() async throws {
        let db = try TestCluster.migratedDatabase()
        let result = try object(try await CompressTask().run(makeContext(url: db.url, task: "compress", args: #"{"older_than_days": 3}"#)))
        XCTAssertEqual(result["skipped"] as? Bool, true)
        XCTAssertEqual(result["reason"] as? String, "timescaledb extension not installed")
        do {
            _ = try await CompressTask().run(makeContext(url: db.url, task: "compress", args: #"{"older_than": 3}"#))
            XCTFail("unknown key accepted")
        } catch is InvalidJobArguments {}
    }

    func testCompressSettingsAreValidated() throws {
        XCTAssertNoThrow(try CompressSettings(lockTimeoutMilliseconds: 0).validate())
        XCTAssertThrowsError(try CompressSettings(lockTimeoutMilliseconds: -1).validate()) { error in
            guard case MaintenanceError.invalidSetting(let key, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "compress.lock_timeout_ms")
        }
        XCTAssertThrowsError(try CompressSettings(segmentBy: "symbol; DROP TABLE x").validate()) { error in
            guard case MaintenanceError.invalidSetting(let key, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "compress.segment_by")
        }
    }

    func testTimescaleStatementBuilders() {
        XCTAssertEqual(
            TimescaleSQL.enableCompression(table: "public.market_data_daily", segmentBy: "symbol", orderBy: "date"),
            "ALTER TABLE public.market_data_daily SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol', timescaledb.compress_orderby = 'date DESC')")
        XCTAssertEqual(
            TimescaleSQL.enableCompression(table: "public.volume_slots", segmentBy: "symbol", orderBy: "date", thenBy: ["slot_index"]),
            "ALTER TABLE public.volume_slots SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol', timescaledb.compress_orderby = 'date DESC, slot_index')")
        XCTAssertEqual(
            TimescaleSQL.enableCompression(table: "s.\"Odd\"", segmentBy: nil, orderBy: "\"it's\""),
            "ALTER TABLE s.\"Odd\" SET (timescaledb.compress, timescaledb.compress_orderby = '\"it''s\" DESC')")
        XCTAssertEqual(
            TimescaleSQL.compressStatement(chunk: "_timescaledb_internal._hyper_1_2_chunk", version: "2.17.2"),
            "SELECT compress_chunk('_timescaledb_internal._hyper_1_2_chunk'::regclass, if_not_compressed => true)")
        XCTAssertEqual(
            TimescaleSQL.compressStatement(chunk: "_timescaledb_internal._hyper_1_2_chunk", version: "2.18.0"),
            "CALL convert_to_columnstore('_timescaledb_internal._hyper_1_2_chunk'::regclass, if_not_columnstore => true)")
        XCTAssertFalse(TimescaleSQL.usesColumnstoreAPI(version: "2.9.3"))
        XCTAssertTrue(TimescaleSQL.usesColumnstoreAPI(version: "2.21.0-dev"))
        XCTAssertTrue(TimescaleSQL.usesColumnstoreAPI(version: "3.0.0"))
        XCTAssertEqual(
            TimescaleSQL.dropChunks(columnType: "date"),
            "SELECT count(*) AS chunks FROM drop_chunks($1::regclass, older_than => $2::date)")
        XCTAssertEqual(
            TimescaleSQL.dropChunks(columnType: "timestamptz"),
            "SELECT count(*) AS chunks FROM drop_chunks($1::regclass, older_than => ($2::date::timestamp AT TIME ZONE 'America/New_York'))")
        XCTAssertEqual(
            RetentionSQL.batchDelete(leaf: "public.t", column: "d", columnType: "date", filterColumn: nil),
            "DELETE FROM ONLY public.t WHERE ctid = ANY(ARRAY(SELECT ctid FROM ONLY public.t WHERE d < $1::date LIMIT $2)) AND d < $1::date")
    }

    func testTimescaleQueriesParseOnPlainPostgreSQL() async throws {
        // The catalog queries cannot run without the extension, but PL/pgSQL checks the syntax
        // of the SQL in a function body at CREATE time without resolving names: a syntax error
        // in any statement text fails here.
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("PREPARE v AS \(TimescaleSQL.installedVersion)")
        for (i, sql) in [TimescaleSQL.timeDimension, TimescaleSQL.compressionEnabled, TimescaleSQL.isHypertable,
                         TimescaleSQL.chunksToCompress, TimescaleSQL.hypertableDetailedSize, TimescaleSQL.chunkTables,
                         TimescaleSQL.primaryKeyColumns,
                         TimescaleSQL.dropChunks(columnType: "date"), TimescaleSQL.countDroppableChunks(columnType: "timestamptz")].enumerated() {
            let body = sql.replacingOccurrences(of: "$1", with: "a").replacingOccurrences(of: "$2", with: "b")
                .replacingOccurrences(of: "$3", with: "c")
            try await conn.execute(
                "CREATE FUNCTION ts_parse_\(i)(a text, b text, c text) RETURNS void LANGUAGE plpgsql AS $f$ BEGIN PERFORM * FROM (\(body)) q; END $f$")
        }
        for (i, sql) in [TimescaleSQL.enableCompression(table: "t", segmentBy: "symbol", orderBy: "date"),
                         TimescaleSQL.convertToColumnstore("c"), TimescaleSQL.compressChunk("c")].enumerated() {
            try await conn.execute(
                "CREATE FUNCTION ts_stmt_\(i)() RETURNS void LANGUAGE plpgsql AS $f$ BEGIN \(sql); END $f$")
        }
        // The check does catch syntax errors.
        do {
            try await conn.execute("CREATE FUNCTION ts_bad() RETURNS void LANGUAGE plpgsql AS $f$ BEGIN PERFORM * FROM show_chunks(a older_than => 1) q; END $f$")
            XCTFail("syntax error not caught")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, "42601")
        }
    }
}
