import Foundation
import JobQueue
import MaintenanceTasks
import PostgresClient

/// Figures from `RetentionBenchmark.run`.
public struct RetentionBenchmarkReport: Sendable, Codable, Equatable {
    /// Rows loaded each time.
    public var rowsLoaded: Int
    /// Rows past the cutoff (deleted by each method).
    public var rowsDeleted: Int
    /// Rows per DELETE statement of the batched method.
    public var batchSize: Int
    /// DELETE statements the batched method ran.
    public var batches: Int
    /// Wall time of the batched deletes.
    public var batchedSeconds: Double
    /// Rows per second, batched.
    public var batchedRowsPerSecond: Double
    /// Wall time of the single unbatched DELETE.
    public var singleSeconds: Double
    /// Rows per second, single DELETE.
    public var singleRowsPerSecond: Double

    enum CodingKeys: String, CodingKey {
        case rowsLoaded = "rows_loaded", rowsDeleted = "rows_deleted", batchSize = "batch_size", batches
        case batchedSeconds = "batched_seconds", batchedRowsPerSecond = "batched_rows_per_second"
        case singleSeconds = "single_seconds", singleRowsPerSecond = "single_rows_per_second"
    }

    /// A few lines for a terminal.
    public var summary: String {
        func f(_ x: Double) -> String { String(format: "%.0f", x) }
        return """
            retention benchmark: \(rowsLoaded) rows loaded, \(rowsDeleted) past the cutoff
              batched (\(batchSize)/statement, \(batches) statements): \(String(format: "%.2f", batchedSeconds)) s, \(f(batchedRowsPerSecond)) rows/s
              single DELETE:                 \(String(format: "%.2f", singleSeconds)) s, \(f(singleRowsPerSecond)) rows/s
            """
    }
}

/// Measures the batched retention delete against one unbatched DELETE of the same rows.
///
/// Loads `rows` bars into a scratch table shaped like `market_data_daily` (primary key
/// (symbol, date), index on date), dated over the last 400 days so about half are past a
/// 200-day window; deletes them with the retention task's batched statement; reloads; deletes
/// the same rows with one DELETE. The table is dropped at the end.
public enum RetentionBenchmark {
    /// The scratch table's name.
    public static let table = "closebell_bench_retention"

    /// Runs the benchmark in the database `conninfo` names.
    public static func run(conninfo: String?, rows: Int, batchSize: Int = 10_000) async throws -> RetentionBenchmarkReport {
        guard rows >= 400 else { throw MaintenanceError.invalidSetting(key: "rows", reason: "must be at least 400, got \(rows)") }
        guard batchSize >= 1 else { throw MaintenanceError.invalidSetting(key: "batch_size", reason: "must be at least 1") }
        let connection = try await PostgresConnection.connect(conninfo, applicationName: "closebell bench retention")
        do {
            let report = try await measure(connection: connection, rows: rows, batchSize: batchSize)
            _ = try? await connection.execute("DROP TABLE IF EXISTS \(table)")
            await connection.close()
            return report
        } catch {
            _ = try? await connection.execute("DROP TABLE IF EXISTS \(table)")
            await connection.close()
            throw error
        }
    }

    static func measure(connection: PostgresConnection, rows: Int, batchSize: Int) async throws -> RetentionBenchmarkReport {
        let cutoff: String = try await connection.query(
            "SELECT ((now() AT TIME ZONE 'America/New_York')::date - 200)::text AS cutoff").first!.decode("cutoff")
        let batched = RetentionSQL.batchDelete(leaf: table, column: "date", columnType: "date", filterColumn: nil)
        let single = RetentionSQL.singleDelete(table: table, column: "date", columnType: "date")

        let expected = try await load(connection: connection, rows: rows, cutoff: cutoff)
        var start = ContinuousClock.now
        let (deleted, batches) = try await RetentionTask.deleteInBatches(
            connection: connection, sql: batched, leaf: table, table: table, cutoff: cutoff, filterValues: nil,
            batchSize: batchSize, pause: .zero, timeouts: TaskTimeouts(shortStatementSeconds: 0), checkCancellation: {},
            afterBatch: { _, _ in })
        let batchedSeconds = elapsedSeconds(since: start, precise: true)
        guard deleted == expected else {
            throw MaintenanceError.invalidSetting(key: "benchmark", reason: "batched delete removed \(deleted) rows, expected \(expected)")
        }

        _ = try await load(connection: connection, rows: rows, cutoff: cutoff)
        start = ContinuousClock.now
        let singleDeleted = try await connection.query(single, [cutoff]).affectedRows ?? 0
        let singleSeconds = elapsedSeconds(since: start, precise: true)
        guard singleDeleted == expected else {
            throw MaintenanceError.invalidSetting(key: "benchmark", reason: "single delete removed \(singleDeleted) rows, expected \(expected)")
        }
        return RetentionBenchmarkReport(
            rowsLoaded: max(1, rows / 400) * 400, rowsDeleted: expected, batchSize: batchSize, batches: batches,
            batchedSeconds: batchedSeconds, batchedRowsPerSecond: Double(expected) / max(batchedSeconds, 1e-9),
            singleSeconds: singleSeconds, singleRowsPerSecond: Double(expected) / max(singleSeconds, 1e-9))
    }

    /// (Re)creates and fills the scratch table, vacuums it so both methods start from the same
    /// state, and returns how many rows are past the cutoff.
    static func load(connection: PostgresConnection, rows: Int, cutoff: String) async throws -> Int {
        let symbols = max(1, rows / 400)
        try await connection.execute(
            """
            DROP TABLE IF EXISTS \(table);
            CREATE TABLE \(table) (
                symbol text NOT NULL, date date NOT NULL, open numeric NOT NULL, high numeric NOT NULL,
                low numeric NOT NULL, close numeric NOT NULL, volume numeric NOT NULL, vwap numeric,
                trades_count bigint, updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (symbol, date));
            CREATE INDEX \(table)_date_idx ON \(table) (date);
            """)
        try await connection.query(
            """
            INSERT INTO \(table) (symbol, date, open, high, low, close, volume, vwap, trades_count)
            SELECT 'S' || (g / 400), (now() AT TIME ZONE 'America/New_York')::date - (g % 400),
                   100 + g % 7, 101 + g % 7, 99 + g % 7, 100.5 + g % 7, 1000000 + g, 100.2, 5000
              FROM generate_series(0, $1::int - 1) g
            """, [symbols * 400])
        try await connection.execute("VACUUM (ANALYZE) \(table)")
        return try await connection.query("SELECT count(*) AS n FROM \(table) WHERE date < $1::date", [cutoff]).first!.decode("n")
    }
}
