import Foundation
import JobQueue
import MaintenanceTasks
import PostgresClient
import TestSupport
import XCTest

final class RetentionTests: XCTestCase {
    /// Seeds 3 symbols × 16 days around the 200-day cutoff: 10 days before it (deleted), the
    /// cutoff day itself and 5 after (kept); plus finished and unfinished jobs.
    private func seed(_ conn: PostgresConnection) async throws -> String {
        try await createMarketTables(conn)
        let cutoff: String = try await conn.query(
            "SELECT ((now() AT TIME ZONE 'America/New_York')::date - 200)::text AS c").first!.decode("c")
        try await conn.query(
            """
            INSERT INTO market_data_daily (symbol, date, open, high, low, close, volume)
            SELECT s, $1::date + d, 1, 1, 1, 1, 1 FROM unnest(ARRAY['AAPL','MSFT','IBM']) s, generate_series(-10, 5) d
            """, [cutoff])
        try await conn.execute(
            """
            INSERT INTO maintenance_jobs (task, state, finished_at) VALUES
              ('noop', 'succeeded', now() - interval '40 days'),
              ('noop', 'failed',    now() - interval '31 days 1 hour'),
              ('noop', 'cancelled', now() - interval '45 days'),
              ('noop', 'succeeded', now() - interval '20 days'),
              ('noop', 'running',   now() - interval '40 days'),
              ('noop', 'available', NULL);
            """)
        return cutoff
    }

    func testDeletesExactlyTheRowsPastTheWindowInBatches() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let cutoff = try await seed(conn)
        // A configured table that does not exist is skipped and reported.
        try await conn.execute("DROP TABLE IF EXISTS volume_slots")
        let progress = ProgressLog()
        let task = RetentionTask(settings: RetentionSettings(batchSize: 7))
        let result = try object(try await task.run(makeContext(url: db.url, task: "retention", progress: progress)))

        let remaining = try await conn.query("SELECT count(*) AS n, min(date)::text AS first FROM market_data_daily").first
        XCTAssertEqual(try remaining?.decode("n", as: Int.self), 18)          // 3 × (cutoff day + 5 after)
        XCTAssertEqual(remaining?["first"], cutoff)                              // the boundary day stays
        let jobs = try await conn.query("SELECT string_agg(state, ',' ORDER BY id) AS s FROM maintenance_jobs").first?["s"]
        XCTAssertEqual(jobs, "succeeded,running,available")                      // only old finished jobs went

        let tables = try XCTUnwrap(result["tables"] as? [[String: Any]])
        let daily = try XCTUnwrap(tables.first { $0["table"] as? String == "public.market_data_daily" })
        XCTAssertEqual(daily["rows_removed"] as? Int, 30)
        XCTAssertEqual(daily["batches"] as? Int, 5)                              // 7+7+7+7+2
        XCTAssertEqual(daily["cutoff"] as? String, cutoff)
        XCTAssertEqual(daily["method"] as? String, "batched_delete")
        let jobsReport = try XCTUnwrap(tables.first { $0["table"] as? String == "public.maintenance_jobs" })
        XCTAssertEqual(jobsReport["rows_removed"] as? Int, 3)
        XCTAssertEqual(result["total_rows_removed"] as? Int, 33)
        let skipped = try XCTUnwrap(result["skipped"] as? [[String: Any]])
        XCTAssertEqual(skipped.first?["table"] as? String, "volume_slots")      // configured, not created here
        XCTAssertEqual(skipped.first?["reason"] as? String, "table does not exist")
        XCTAssertGreaterThanOrEqual(progress.entries.count, 5)
        XCTAssertTrue(progress.entries.contains { $0.contains("\"currentRows\":14") })

        // A second run finds nothing left.
        let again = try object(try await task.run(makeContext(url: db.url, task: "retention")))
        XCTAssertEqual(again["total_rows_removed"] as? Int, 0)
    }

    func testDryRunCountsAndTableSubset() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        _ = try await seed(conn)
        let result = try object(try await RetentionTask().run(
            makeContext(url: db.url, task: "retention", args: #"{"tables": ["market_data_daily"], "dry_run": true, "batch_size": 4}"#)))
        XCTAssertEqual(result["dry_run"] as? Bool, true)
        let tables = try XCTUnwrap(result["tables"] as? [[String: Any]])
        XCTAssertEqual(tables.count, 1)
        XCTAssertEqual(tables.first?["rows_removed"] as? Int, 30)
        XCTAssertEqual(tables.first?["method"] as? String, "count")
        let count = try await conn.query("SELECT count(*) AS n FROM market_data_daily").first?.decode("n", as: Int.self)
        XCTAssertEqual(count, 48)
    }

    func testUnknownOrUnconfiguredTableInArgsIsRefused() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        _ = try await seed(conn)
        do {
            _ = try await RetentionTask().run(makeContext(url: db.url, task: "retention", args: #"{"tables": ["no_such_table"]}"#))
            XCTFail("unknown table accepted")
        } catch let error as MaintenanceError {
            XCTAssertEqual(error, .unknownTable("no_such_table"))
            XCTAssertTrue(error.description.contains("no_such_table"))
        }
        do {
            _ = try await RetentionTask().run(makeContext(url: db.url, task: "retention", args: #"{"tables": ["maintenance_task_types"]}"#))
            XCTFail("unconfigured table accepted")
        } catch let error as MaintenanceError {
            guard case .tableNotConfigured(let table, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(table, "maintenance_task_types")
        }
        do {
            _ = try await RetentionTask().run(makeContext(url: db.url, task: "retention", args: #"{"batch_size": "many"}"#))
            XCTFail("bad batch_size accepted")
        } catch is InvalidJobArguments {}
        let count = try await conn.query("SELECT count(*) AS n FROM market_data_daily").first?.decode("n", as: Int.self)
        XCTAssertEqual(count, 48)
    }

    func testInjectionLookingNamesAreRefused() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        _ = try await seed(conn)
        let evil = "market_data_daily; DROP TABLE maintenance_jobs; --"
        do {
            _ = try await RetentionTask().run(makeContext(url: db.url, task: "retention", args: "{\"tables\": [\"\(evil)\"]}"))
            XCTFail("injection accepted")
        } catch let error as MaintenanceError {
            XCTAssertEqual(error, .invalidTableName(evil))
        }
        for rule in [
            RetentionRule(table: "x\" WHERE true; DROP TABLE maintenance_jobs; --", column: "date", days: 1),
            RetentionRule(table: "market_data_daily", column: "date < now() OR true --", days: 1),
            RetentionRule(table: "market_data_daily", column: "date", days: 1, filterColumn: "symbol)--"),
        ] {
            let task = RetentionTask(settings: RetentionSettings(rules: [rule]))
            do {
                _ = try await task.run(makeContext(url: db.url, task: "retention"))
                XCTFail("injection in config accepted: \(rule)")
            } catch let error as MaintenanceError {
                switch error {
                case .invalidTableName, .invalidColumnName: break
                default: XCTFail("\(error)")
                }
            }
        }
        let count = try await conn.query("SELECT count(*) AS n FROM market_data_daily").first?.decode("n", as: Int.self)
        XCTAssertEqual(count, 48)
        let jobs = try await conn.query("SELECT count(*) AS n FROM maintenance_jobs").first?.decode("n", as: Int.self)
        XCTAssertEqual(jobs, 6)
    }

    func testConfiguredColumnMustExistAndBeATime() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        _ = try await seed(conn)
        let missing = RetentionTask(settings: RetentionSettings(rules: [RetentionRule(table: "market_data_daily", column: "day", days: 1)]))
        do {
            _ = try await missing.run(makeContext(url: db.url, task: "retention"))
            XCTFail("missing column accepted")
        } catch let error as MaintenanceError {
            XCTAssertEqual(error, .unknownColumn(table: "public.market_data_daily", column: "day"))
        }
        let wrongType = RetentionTask(settings: RetentionSettings(rules: [RetentionRule(table: "market_data_daily", column: "symbol", days: 1)]))
        do {
            _ = try await wrongType.run(makeContext(url: db.url, task: "retention"))
            XCTFail("text column accepted")
        } catch let error as MaintenanceError {
            XCTAssertEqual(error, .unsupportedColumnType(table: "public.market_data_daily", column: "symbol", type: "text"))
        }
    }

    func testCustomTableTimestampColumnAndCancellation() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute(
            """
            CREATE SCHEMA audit;
            CREATE TABLE audit.events (id serial PRIMARY KEY, at timestamptz NOT NULL);
            -- New York midnight of the cutoff day (today - 10): one microsecond before goes, the midnight stays.
            INSERT INTO audit.events (at)
            SELECT (((now() AT TIME ZONE 'America/New_York')::date - 10)::timestamp AT TIME ZONE 'America/New_York') + o
              FROM unnest(ARRAY[interval '-1 microsecond', interval '-3 days', interval '0', interval '1 day']) o;
            """)
        let settings = RetentionSettings(rules: [RetentionRule(table: "audit.events", column: "at", days: 10)], batchSize: 1)
        let cancelled = CancellationFlag()
        cancelled.set()
        do {
            _ = try await RetentionTask(settings: settings).run(makeContext(url: db.url, task: "retention", cancellation: cancelled))
            XCTFail("cancelled task ran")
        } catch is JobCancelled {}
        let before = try await conn.query("SELECT count(*) AS n FROM audit.events").first?.decode("n", as: Int.self)
        XCTAssertEqual(before, 4)

        let result = try object(try await RetentionTask(settings: settings).run(makeContext(url: db.url, task: "retention")))
        XCTAssertEqual(result["total_rows_removed"] as? Int, 2)
        let left = try await conn.query("SELECT count(*) AS n FROM audit.events").first?.decode("n", as: Int.self)
        XCTAssertEqual(left, 2)
    }

    /// The issue's case: monthly partitions (a default one too), 60 days kept, rows in every
    /// partition. Matching by ctid through the parent removed the whole table.
    func testPartitionedTableKeepsEveryRowInsideTheWindow() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute(
            """
            CREATE TABLE fills (id bigint NOT NULL, trade_date date NOT NULL, qty int NOT NULL) PARTITION BY RANGE (trade_date);
            CREATE TABLE fills_default PARTITION OF fills DEFAULT;
            DO $$
            DECLARE m date;
            BEGIN
              FOR m IN SELECT generate_series(date '2026-01-01', date '2026-12-01', interval '1 month')::date LOOP
                EXECUTE format('CREATE TABLE %I PARTITION OF fills FOR VALUES FROM (%L) TO (%L)',
                               'fills_' || to_char(m, 'YYYYMM'), m, (m + interval '1 month')::date);
              END LOOP;
            END $$;
            -- 20 rows a day from 2025-12-01 (default partition) to 2026-12-31: the same ctids in every partition.
            INSERT INTO fills SELECT row_number() OVER (), d, n
              FROM generate_series(date '2025-12-01', date '2026-12-31', interval '1 day') d, generate_series(1, 20) n;
            """)
        let settings = RetentionSettings(
            rules: [RetentionRule(table: "fills", column: "trade_date", days: 60)], batchSize: 50, today: "2026-11-15")
        let expected: Int = try await conn.query("SELECT count(*) AS n FROM fills WHERE trade_date < date '2026-09-16'").first!.decode("n")
        let keptBefore = try await conn.query(
            "SELECT count(*) AS n, md5(string_agg(f::text, ',' ORDER BY id)) AS sum FROM fills f WHERE trade_date >= date '2026-09-16'").first

        let dry = try object(try await RetentionTask(settings: settings).run(
            makeContext(url: db.url, task: "retention", args: #"{"dry_run": true}"#)))
        XCTAssertEqual((dry["tables"] as? [[String: Any]])?.first?["rows_removed"] as? Int, expected)
        let result = try object(try await RetentionTask(settings: settings).run(makeContext(url: db.url, task: "retention")))
        XCTAssertEqual(result["total_rows_removed"] as? Int, expected)
        let table = try XCTUnwrap((result["tables"] as? [[String: Any]])?.first)
        XCTAssertEqual(table["cutoff"] as? String, "2026-09-16")

        let after = try await conn.query(
            "SELECT count(*) AS n, md5(string_agg(f::text, ',' ORDER BY id)) AS sum, min(trade_date)::text AS first FROM fills f").first
        XCTAssertEqual(try after?.decode("n", as: Int.self), try keptBefore?.decode("n", as: Int.self))
        XCTAssertEqual(after?["sum"], keptBefore?["sum"])                      // every in-window row, unchanged
        XCTAssertEqual(after?["first"], "2026-09-16")
    }

    /// drop_partitions: whole partitions before the cutoff are dropped (sub-partitioned ones
    /// too), the one holding the cutoff and the default partition are emptied row by row.
    func testDropPartitionsDropsOnlyPartitionsEntirelyBeforeTheCutoff() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute(
            """
            CREATE TABLE ev (id int NOT NULL, at timestamptz NOT NULL) PARTITION BY RANGE (at);
            CREATE TABLE ev_default PARTITION OF ev DEFAULT;
            CREATE TABLE ev_2026_01 PARTITION OF ev FOR VALUES FROM ('2026-01-01 00:00-05') TO ('2026-02-01 00:00-05');
            CREATE TABLE ev_2026_02 PARTITION OF ev FOR VALUES FROM ('2026-02-01 00:00-05') TO ('2026-03-01 00:00-05')
              PARTITION BY RANGE (at);
            CREATE TABLE ev_2026_02a PARTITION OF ev_2026_02 FOR VALUES FROM ('2026-02-01 00:00-05') TO ('2026-02-15 00:00-05');
            CREATE TABLE ev_2026_02b PARTITION OF ev_2026_02 FOR VALUES FROM ('2026-02-15 00:00-05') TO ('2026-03-01 00:00-05');
            CREATE TABLE ev_2026_03 PARTITION OF ev FOR VALUES FROM ('2026-03-01 00:00-05') TO ('2026-04-01 00:00-04');
            INSERT INTO ev SELECT g, timestamptz '2025-12-20 00:00-05' + g * interval '1 hour' FROM generate_series(0, 24 * 100) g;
            """)
        // Cutoff 2026-03-01: January and February (with its sub-partitions) go whole.
        let settings = RetentionSettings(
            rules: [RetentionRule(table: "ev", column: "at", days: 10)], batchSize: 100, today: "2026-03-11", dropPartitions: true)
        let expected: Int = try await conn.query("SELECT count(*) AS n FROM ev WHERE at < timestamptz '2026-03-01 00:00-05'").first!.decode("n")
        let dry = try object(try await RetentionTask(settings: settings).run(makeContext(url: db.url, task: "retention", args: #"{"dry_run": true}"#)))
        let dryTable = try XCTUnwrap((dry["tables"] as? [[String: Any]])?.first)
        XCTAssertEqual(dryTable["rows_removed"] as? Int, expected)
        XCTAssertEqual(dryTable["partitions"] as? Int, 2)
        let result = try object(try await RetentionTask(settings: settings).run(makeContext(url: db.url, task: "retention")))
        let table = try XCTUnwrap((result["tables"] as? [[String: Any]])?.first)
        XCTAssertEqual(table["rows_removed"] as? Int, expected)
        XCTAssertEqual(table["partitions"] as? Int, 2)
        let left = try await conn.query(
            "SELECT string_agg(relid::text, ',' ORDER BY relid::text) AS parts FROM pg_partition_tree('ev') WHERE relid <> 'ev'::regclass").first?["parts"]
        XCTAssertEqual(left, "ev_2026_03,ev_default")
        let first = try await conn.query("SELECT min(at) = timestamptz '2026-03-01 00:00-05' AS ok, count(*) AS n FROM ev").first
        XCTAssertEqual(first?["ok"], "t")
        XCTAssertEqual(try first?.decode("n", as: Int.self), 24 * 100 + 1 - expected)
    }

    /// Inheritance children and a timestamptz column whose New York midnight moves with DST.
    func testInheritanceChildrenAndDaylightSavingBoundary() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute(
            """
            CREATE TABLE ticks (id int, at timestamptz);
            CREATE TABLE ticks_a () INHERITS (ticks);
            CREATE TABLE ticks_b () INHERITS (ticks);
            -- Cutoff 2026-03-08 (DST starts): New York midnight is 05:00 UTC.
            INSERT INTO ticks VALUES (1, '2026-03-08 04:59:59.999999+00'), (2, '2026-03-08 05:00:00+00');
            INSERT INTO ticks_a VALUES (3, '2026-03-08 04:59:59.999999+00'), (4, '2026-03-08 05:00:00+00'), (5, '2026-03-07 12:00:00+00');
            INSERT INTO ticks_b VALUES (6, '2026-03-08 04:59:59.999999+00'), (7, '2026-03-09 04:00:00+00'), (8, NULL);
            """)
        let settings = RetentionSettings(rules: [RetentionRule(table: "ticks", column: "at", days: 10)], batchSize: 1, today: "2026-03-18")
        let result = try object(try await RetentionTask(settings: settings).run(makeContext(url: db.url, task: "retention")))
        XCTAssertEqual(result["total_rows_removed"] as? Int, 4)
        let left = try await conn.query("SELECT string_agg(id::text, ',' ORDER BY id) AS ids FROM ticks").first?["ids"]
        XCTAssertEqual(left, "2,4,7,8")
    }

    func testSettingsValidation() {
        XCTAssertThrowsError(try RetentionSettings(batchSize: 0).validate())
        XCTAssertThrowsError(try RetentionSettings(rules: [RetentionRule(table: "a", column: "d", days: -1)]).validate())
        XCTAssertThrowsError(try RetentionSettings(rules: [RetentionRule(table: "a", column: "d", days: 1), RetentionRule(table: "a", column: "d", days: 2)]).validate())
        XCTAssertNoThrow(try RetentionSettings().validate())
        var settings = RetentionSettings()
        settings.setRule(RetentionRule(table: "market_data_daily", column: "date", days: 365))
        XCTAssertEqual(settings.rules.filter { $0.table == "market_data_daily" }.map(\.days), [365])
    }
}
