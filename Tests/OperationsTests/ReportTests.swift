import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import JobQueue
import Logging
import MaintenanceTasks
import Operations
import PostgresClient
import TestSupport
import XCTest

final class ReportTests: XCTestCase {
    /// table_sizes records today's sizes (idempotently); the report shows runs, trends, backups
    /// and growth; its CSV parses (RFC 4180) and its HTML is one well-formed, offline document.
    func testTableSizesAndReportFormats() async throws {
        let db = try TestCluster.migratedDatabase("ops_report")
        let conn = try await PostgresConnection.connect(db.url)
        defer { Task { await conn.close() } }

        // The task is registered for psql and in the daily cycle's last stage.
        let cycleRow = try await conn.query(
            "SELECT stage = (SELECT max(stage) FROM maintenance_cycle_tasks WHERE cycle = 'daily') AS last FROM maintenance_cycle_tasks WHERE cycle = 'daily' AND task = 'table_sizes'")
        XCTAssertEqual(try cycleRow.first?.decode("last", as: Bool.self), true)
        await XCTAssertThrowsErrorAsync(try await conn.query("INSERT INTO maintenance_jobs (task, args) VALUES ('table_sizes', '{\"days\": 1}')"))

        _ = try await conn.query("INSERT INTO market_data_daily (symbol, date, open, high, low, close, volume) SELECT 'S' || g, '2026-11-20', 1, 2, 0.5, 1.5, 100 FROM generate_series(1, 200) g")
        let task = TableSizesTask(configured: ["no_such_table", "market_data_daily"])
        func runTask() async throws -> [String: Any] {
            let context = JobContext(jobID: 1, task: "table_sizes", args: PostgresJSON(text: "{}"), attempt: 1, runID: nil,
                                     previousProgress: nil, logger: Logger(label: "test"), conninfo: db.url)
            let result = try await task.run(context)
            return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try PostgresJSON(encoding: result).text.utf8)) as? [String: Any])
        }
        let result = try await runTask()
        XCTAssertEqual(result["skipped"] as? [String], ["no_such_table"])
        _ = try await runTask()
        let recorded = try await conn.query(
            "SELECT count(*) AS n, count(DISTINCT recorded_on) AS days, max(total_bytes) FILTER (WHERE table_name = 'market_data_daily') AS daily FROM maintenance_table_sizes")
        let existing = try await conn.query("SELECT count(*) AS n FROM unnest(string_to_array($1, ',')) t WHERE to_regclass(t) IS NOT NULL", [TableSizesTask.defaultTables.joined(separator: ",")])
        XCTAssertEqual(try recorded.first?.decode("n", as: Int64.self), try existing.first?.decode("n", as: Int64.self))
        let capacity = try await conn.query("SELECT count(*) AS n, min(database_bytes) AS b FROM maintenance_capacity")
        XCTAssertEqual(try capacity.first?.decode("n", as: Int64.self), 1, "one capacity row per day")
        XCTAssertGreaterThan(try capacity.first?.decode("b", as: Int64.self) ?? 0, 1_000_000)
        XCTAssertGreaterThan((result["database_bytes"] as? NSNumber)?.int64Value ?? 0, 1_000_000)
        XCTAssertEqual(try recorded.first?.decode("days", as: Int64.self), 1)
        let dailyBytes: Int64 = try XCTUnwrap(try recorded.first?.decodeIfPresent("daily"))
        XCTAssertGreaterThan(dailyBytes, 8192)
        // History: the same table smaller three days ago, for growth.
        _ = try await conn.query(
            """
            INSERT INTO maintenance_table_sizes (recorded_on, table_name, total_bytes, table_bytes, index_bytes, row_estimate)
            SELECT recorded_on - 3, table_name, total_bytes / 2, table_bytes / 2, index_bytes / 2, row_estimate / 2
              FROM maintenance_table_sizes WHERE table_name = 'market_data_daily'
            """)

        // The psql examples of sql/operations.sql run as they are.
        let examples = try String(contentsOf: TestCluster.repositoryRoot.appendingPathComponent("sql/operations.sql"), encoding: .utf8)
        _ = try await conn.execute(examples)

        // A weekly run: vacuum succeeds (bytes freed), compress fails with an awkward error text.
        let awkward = "he said \"no\", then left\nsecond line"
        let run: Int64 = try await conn.query("SELECT run_id FROM maintenance_enqueue_cycle('weekly')").first!.decode("run_id")
        _ = try await conn.query(
            """
            UPDATE maintenance_jobs SET state = 'succeeded', attempts = 1, started_at = now() - interval '2 seconds',
                   result = '{"bytes_freed": 8192, "tables": []}' WHERE run_id = $1 AND task = 'vacuum'
            """, [run])
        _ = try await conn.query(
            "UPDATE maintenance_jobs SET state = 'failed', attempts = 3, started_at = now() - interval '1 second', errors = $2 WHERE run_id = $1 AND task = 'compress'",
            [run, try PostgresJSON(encoding: [["error": awkward]])])
        let backupResult = #"{"path": "/var/backups/m_20261122_010000.sql.gz", "bytes": 123456, "seconds": 1.5, "dumpBytes": 999999}"#
        _ = try await conn.query(
            "INSERT INTO maintenance_jobs (task, state, attempts, started_at, finished_at, result) VALUES ('backup', 'succeeded', 1, now() - interval '2 seconds', now(), $1::jsonb)",
            [PostgresJSON(text: backupResult)])
        _ = try await conn.query(
            "INSERT INTO maintenance_jobs (task, state, attempts, started_at, finished_at, result) VALUES ('ohlc_daily', 'succeeded', 1, now() - interval '30 hours', now() - interval '29 hours', '{\"rows_written\": 700}'), ('ohlc_daily', 'succeeded', 1, now() - interval '3 hours', now() - interval '2 hours', '{\"rows_written\": 900}')")

        let report = try await OperationsReport.build(connection: conn, period: .day, now: Date().addingTimeInterval(5))
        let weekly = try XCTUnwrap(report.runs.first { $0.runID == run })
        XCTAssertEqual(weekly.state, "partial")
        XCTAssertEqual(weekly.tasks.first { $0.task == "vacuum" }?.bytesFreed, 8192)
        XCTAssertEqual(weekly.tasks.first { $0.task == "compress" }?.error, awkward)
        let ohlc = try XCTUnwrap(report.tasks.first { $0.task == "ohlc_daily" })
        XCTAssertEqual(ohlc.rows, 900)
        XCTAssertEqual(ohlc.previousRows, 700)
        XCTAssertEqual(report.backups.map(\.bytes), [123456])
        XCTAssertEqual(report.backups.first?.file, "m_20261122_010000.sql.gz")
        let growth = try XCTUnwrap(report.tables.first { $0.table == "market_data_daily" })
        XCTAssertEqual(growth.history.count, 2)
        XCTAssertEqual(growth.growthBytes, dailyBytes - dailyBytes / 2)

        // CSV: RFC 4180, same width everywhere, the awkward text back intact.
        let csv = try report.render(.csv)
        let records = try CSVParser.parse(csv)
        XCTAssertEqual(records.first, ["section", "subject", "item", "metric", "value", "previous_value"])
        XCTAssertTrue(records.allSatisfy { $0.count == 6 })
        XCTAssertTrue(records.contains { $0[0] == "run_task" && $0[2] == "compress" && $0[3] == "error" && $0[4] == awkward })
        XCTAssertTrue(records.contains { $0[0] == "task" && $0[1] == "ohlc_daily" && $0[3] == "rows" && $0[4] == "900" && $0[5] == "700" })
        XCTAssertTrue(records.contains { $0[0] == "backup" && $0[3] == "bytes" && $0[4] == "123456" })

        // HTML: one well-formed document with inline SVG and nothing fetched from a network.
        let html = try report.render(.html)
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>"))
        let parser = XMLParser(data: Data(html.utf8))
        let ok = parser.parse()
        XCTAssertTrue(ok, "HTML is not well-formed: \(String(describing: parser.parserError))")
        XCTAssertEqual(html.components(separatedBy: "<html").count - 1, 1)
        XCTAssertTrue(html.contains("<svg"))
        XCTAssertTrue(html.contains("&quot;no&quot;"))
        for forbidden in ["http://", "https://", "<script", "src=", "@import", "url("] {
            XCTAssertFalse(html.contains(forbidden), "HTML contains \(forbidden)")
        }

        let json = try report.render(.json)
        let decoded = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(decoded["period"] as? String, "day")
        XCTAssertNotNil(decoded["previous_from"])
        let text = try report.render(.text)
        XCTAssertTrue(text.contains("compress") && text.contains("market_data_daily"))
    }

    /// `closebell report` writes a file; a bad period is refused with a non-zero exit.
    func testReportCommand() async throws {
        let db = try TestCluster.migratedDatabase("ops_report_cli")
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID().uuidString).html").path
        defer { unlink(output) }
        let run = try ClosebellBinary.run(["report", "--database-url", db.url, "--period", "week", "--format", "html", "--output", output])
        XCTAssertEqual(run.status, 0, run.output)
        let html = try String(contentsOfFile: output, encoding: .utf8)
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>") && html.hasSuffix("</html>\n"))
        let bad = try ClosebellBinary.run(["report", "--database-url", db.url, "--period", "month"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.output.contains("day or week"), bad.output)
    }
}

func XCTAssertThrowsErrorAsync<T>(_ expression: @autoclosure () async throws -> T, file: StaticString = #filePath, line: UInt = #line) async {
    do {
        _ = try await expression()
        XCTFail("expected an error", file: file, line: line)
    } catch {}
}
