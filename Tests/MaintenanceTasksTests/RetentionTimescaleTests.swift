import Foundation
import MaintenanceTasks
import PostgresClient
import TestSupport
import XCTest

/// Retention on a TimescaleDB hypertable whose rule has a filter (so batched deletes, chunk by
/// chunk, instead of drop_chunks), with compressed and uncompressed chunks.
///
/// Needs a server with TimescaleDB in `shared_preload_libraries`: the test cluster when it has
/// it, or the server `CLOSEBELL_TEST_TIMESCALE_URL` names (a database is created there for the
/// test). Skipped otherwise.
final class RetentionTimescaleTests: XCTestCase {
    private func timescaleDatabase() async throws -> String {
        if let server = ProcessInfo.processInfo.environment["CLOSEBELL_TEST_TIMESCALE_URL"], !server.isEmpty {
            let name = "closebell_rt_\(UInt32.random(in: 0...UInt32.max))"
            let admin = try await PostgresConnection.connect(server)
            try await admin.execute("CREATE DATABASE \(name)")
            await admin.close()
            let info = try ConnectionInfo(parsing: server)
            return info.conninfoString(overriding: ["dbname": name])
        }
        return try TestCluster.freshDatabase("rts").url
    }

    func testHypertableWithAFilterKeepsEveryRowInsideTheWindowCompressedOrNot() async throws {
        let url = try await timescaleDatabase()
        let conn = try await PostgresConnection.connect(url)
        // CREATE EXTENSION without the preload can take the backend down: ask first.
        let preload: String = try await conn.query("SELECT current_setting('shared_preload_libraries') AS s").first!.decode("s")
        guard preload.contains("timescaledb") else {
            await conn.close()
            throw XCTSkip("TimescaleDB is not in shared_preload_libraries of the test server")
        }
        try await conn.execute(
            """
            CREATE EXTENSION IF NOT EXISTS timescaledb;
            CREATE TABLE ht (id int NOT NULL, at timestamptz NOT NULL, kind text NOT NULL);
            SELECT create_hypertable('ht', 'at', chunk_time_interval => interval '7 days');
            INSERT INTO ht SELECT g, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 hour', CASE WHEN g % 3 = 0 THEN 'a' ELSE 'b' END
              FROM generate_series(0, 24 * 60 - 1) g;
            ALTER TABLE ht SET (timescaledb.compress, timescaledb.compress_orderby = 'at');
            SELECT count(compress_chunk(c)) FROM show_chunks('ht', older_than => timestamptz '2026-01-29') c;
            """)
        // Cutoff 2026-01-20 (New York midnight, 05:00 UTC): only kind 'a' rows before it go.
        let rule = RetentionRule(table: "ht", column: "at", days: 10, filterColumn: "kind", filterValues: ["a"])
        let settings = RetentionSettings(rules: [rule], batchSize: 25, today: "2026-01-30")
        let cutoff = "timestamptz '2026-01-20 05:00:00+00'"
        let expected: Int = try await conn.query("SELECT count(*) AS n FROM ht WHERE kind = 'a' AND at < \(cutoff)").first!.decode("n")
        let kept = try await conn.query(
            "SELECT count(*) AS n, md5(string_agg(id::text, ',' ORDER BY id)) AS sum FROM ht WHERE NOT (kind = 'a' AND at < \(cutoff))").first
        XCTAssertGreaterThan(expected, 100)

        let dry = try object(try await RetentionTask(settings: settings).run(makeContext(url: url, task: "retention", args: #"{"dry_run": true}"#)))
        XCTAssertEqual((dry["tables"] as? [[String: Any]])?.first?["rows_removed"] as? Int, expected)
        let result = try object(try await RetentionTask(settings: settings).run(makeContext(url: url, task: "retention")))
        XCTAssertEqual(result["total_rows_removed"] as? Int, expected)
        let after = try await conn.query("SELECT count(*) AS n, md5(string_agg(id::text, ',' ORDER BY id)) AS sum FROM ht").first
        XCTAssertEqual(after?["n"], kept?["n"])
        XCTAssertEqual(after?["sum"], kept?["sum"])
        await conn.close()
    }
}
