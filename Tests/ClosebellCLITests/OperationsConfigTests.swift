import ChildProcess
import Foundation
import TestSupport
import XCTest

/// The `http:`, `alerts:` and `table_sizes:` keys of the config file, as `closebell worker` reads them.
final class OperationsConfigTests: XCTestCase {
    func testEndpointAndCapacityKeysAreReadAndChecked() throws {
        let db = try TestCluster.migratedDatabase()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-ops-config-\(getpid()).yml").path
        defer { unlink(path) }
        // A table of the user's own, named only in the config: table_sizes measures it.
        _ = try ChildProcess.run("psql", [db.url, "-qc", "CREATE TABLE my_own_table (id int); INSERT INTO maintenance_jobs (task) VALUES ('table_sizes');"])
        func worker(_ yaml: String) throws -> (status: Int32, output: String) {
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            return try ClosebellBinary.run(["worker", "--config", path, "--exit-when-idle", "0.5"], environment: ["DATABASE_URL": db.url])
        }
        let accepted = try worker("""
            http:
              cache_seconds: 2
              max_connections: 64
              header_timeout_seconds: 5
              idle_timeout_seconds: 20
              handler_threads: 4
              dashboard_refresh_seconds: 10
            alerts:
              disk_quota_bytes: 10000000000
              quota_days: 14
              growth_window_days: 10
              backup_disk_percent: 90
              table_growth_bytes_per_day: 1000000
              backup_max_age_hours: off
              notify_success: true
            table_sizes:
              tables: [ticker_earnings, my_own_table]
            """)
        XCTAssertEqual(accepted.status, 0, accepted.output)
        let recorded = try ChildProcess.run("psql", [db.url, "-tAc", """
            SELECT (SELECT count(*) FROM maintenance_table_sizes WHERE table_name = 'my_own_table')
                   || ' ' || (SELECT count(*) FROM maintenance_capacity WHERE database_bytes > 0 AND backup_fs_bytes > 0)
            """])
        XCTAssertEqual(recorded.output.trimmingCharacters(in: .whitespacesAndNewlines), "1 1", "the configured table and the capacity row")
        for (yaml, message) in [
            ("http:\n  max_connections: 0\n", "http.max_connections: must be at least 1"),
            ("http:\n  header_timeout_seconds: soon\n", "http.header_timeout_seconds: expected a number"),
            ("alerts:\n  backup_disk_percent: 120\n", "alerts.backup_disk_percent: must be at most 100"),
            ("alerts:\n  growth_window_days: 1\n", "alerts.growth_window_days: must be at least 2"),
            ("alerts:\n  disk_quota: 5\n", "alerts.disk_quota: unknown key"),
            ("table_sizes:\n  tables: market_data_daily\n", "table_sizes.tables: expected a list of names"),
        ] {
            let refused = try worker(yaml)
            XCTAssertNotEqual(refused.status, 0, yaml)
            XCTAssertTrue(refused.output.contains(message), "\(yaml): \(refused.output)")
        }
    }
}
