import Foundation
import PostgresClient
import TestSupport
import XCTest

@testable import Backup

/// Backup and restore of a TimescaleDB database (checked with 2.28.3 on PostgreSQL 15); skipped
/// when the extension is not installed where the suite runs.
final class TimescaleBackupTests: XCTestCase {
    override func setUp() async throws {
        try XCTSkipUnless(try TestCluster.timescaleAvailable(), "TimescaleDB is not installed for this PostgreSQL server")
    }

    override class func tearDown() {
        BackupFixtures.removeFolders()
        super.tearDown()
    }

    /// Row counts and an md5 of every row of the two hypertables, read through the hypertables.
    private func checksums(_ url: String) async throws -> [String] {
        let conn = try await PostgresConnection.connect(url)
        var result: [String] = []
        for table in ["market_data_daily", "volume_slots"] {
            let row = try await conn.query(
                "SELECT count(*)::text || ' rows, md5 ' || md5(string_agg(t::text, ',' ORDER BY t::text)) AS v FROM \(table) t").first
            result.append("\(table): \(row?["v"] ?? "none")")
        }
        await conn.close()
        return result
    }

    /// Hypertables, chunk counts, compressed chunk counts and compression settings.
    private func layout(_ url: String) async throws -> [String] {
        let conn = try await PostgresConnection.connect(url)
        let rows = try await conn.query(
            """
            SELECT h.hypertable_name || ': ' || h.num_chunks || ' chunks, '
                   || (SELECT count(*) FROM timescaledb_information.chunks c
                        WHERE c.hypertable_name = h.hypertable_name AND c.is_compressed) || ' compressed, '
                   || coalesce((SELECT segmentby || ' / ' || orderby FROM timescaledb_information.hypertable_compression_settings s
                                 WHERE s.hypertable = format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass), 'off') AS v
              FROM timescaledb_information.hypertables h ORDER BY h.hypertable_name
            """)
        await conn.close()
        return rows.compactMap { $0["v"] }
    }

    func testBackupAndRestoreOfATimescaleDatabaseKeepHypertablesChunksAndCompression() async throws {
        let db = try TestCluster.timescaleDatabase("tsbk")
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute(
            """
            INSERT INTO market_data_daily (symbol, date, open, high, low, close, volume)
            SELECT s, current_date - d, 100 + d % 7, 101, 99, 100 + d % 5, 1000000 + d * 17
              FROM unnest(ARRAY['AAPL', 'MSFT', 'IBM']) s, generate_series(0, 200) d;
            INSERT INTO volume_slots (symbol, date, slot_index, volume)
            SELECT s, current_date - d, slot, 1000 + slot * 3 + d
              FROM unnest(ARRAY['AAPL', 'MSFT', 'IBM']) s, generate_series(0, 40) d, generate_series(0, 191, 8) slot;
            ALTER TABLE market_data_daily SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol',
                                               timescaledb.compress_orderby = 'date DESC');
            SELECT count(*) FROM show_chunks('market_data_daily', older_than => interval '60 days') c,
                   LATERAL compress_chunk(c);
            """)
        await conn.close()
        let originalRows = try await checksums(db.url)
        let originalLayout = try await layout(db.url)
        XCTAssertTrue(originalLayout.first?.hasPrefix("market_data_daily:") ?? false, "\(originalLayout)")
        XCTAssertFalse(originalLayout.first?.contains(" 0 compressed") ?? true, "\(originalLayout)")

        let folder = try BackupFixtures.folder()
        let backup = try await BackupRunner(settings: BackupSettings(directory: folder)).run(conninfo: db.url)
        let catalog = BackupCatalog(settings: BackupSettings(directory: folder))
        _ = try await catalog.verify(path: backup.path)

        // Into a new database, then over it again with force.
        let cluster = try TestCluster.shared()
        let target = db.name + "_restored"
        for force in [false, true] {
            _ = try await catalog.restore(path: backup.path, into: target, conninfo: db.url, force: force)
            let restoredRows = try await checksums(cluster.url(database: target))
            let restoredLayout = try await layout(cluster.url(database: target))
            XCTAssertEqual(restoredRows, originalRows)
            XCTAssertEqual(restoredLayout, originalLayout)
            // timescaledb_post_restore() ran: new sessions are out of restoring mode, and new
            // rows still land in chunks (a new one for a date no chunk covers yet).
            let restored = try await PostgresConnection.connect(cluster.url(database: target))
            let restoring = try await restored.query("SELECT current_setting('timescaledb.restoring') AS v").first?["v"]
            XCTAssertEqual(restoring, "off")
            try await restored.execute(
                "INSERT INTO volume_slots (symbol, date, slot_index, volume) VALUES ('NEW', current_date + 400, 0, 1)")
            let inChunk = try await restored.query(
                "SELECT count(*) AS n FROM ONLY volume_slots").first?.decode("n", as: Int.self)
            XCTAssertEqual(inChunk, 0)
            // TimescaleDB's scheduler runs for the restored database (its jobs, e.g. policies, run).
            let scheduler = try await eventually {
                try await restored.query(
                    """
                    SELECT count(*) AS n FROM pg_stat_activity
                     WHERE datname = current_database() AND backend_type = 'TimescaleDB Background Worker Scheduler'
                    """).first?.decode("n", as: Int.self) == 1
            }
            XCTAssertTrue(scheduler, "no TimescaleDB scheduler for the restored database")
            await restored.close()
        }
    }
}
