import Foundation
import JobQueue
import PostgresClient

/// One table's sizes as recorded by `table_sizes`.
public struct RecordedTableSize: Sendable, Codable, Equatable {
    /// The table name as configured.
    public var table: String
    /// Heap, indexes and TOAST (for a hypertable: all its chunks).
    public var totalBytes: Int64
    /// Heap and TOAST without indexes.
    public var tableBytes: Int64
    /// Indexes.
    public var indexBytes: Int64
    /// The planner's row estimate (`reltuples`, or TimescaleDB's `approximate_row_count`).
    public var rowEstimate: Int64

    enum CodingKeys: String, CodingKey {
        case table
        case totalBytes = "total_bytes", tableBytes = "table_bytes", indexBytes = "index_bytes", rowEstimate = "row_estimate"
    }
}

/// The `table_sizes` task's result.
public struct TableSizesReport: Sendable, Codable, Equatable {
    /// The New York date the sizes were recorded for.
    public var recordedOn: String
    /// One entry per existing table.
    public var tables: [RecordedTableSize]
    /// Configured tables that do not exist.
    public var skipped: [String]
    /// Sum of `total_bytes`.
    public var totalBytes: Int64

    enum CodingKeys: String, CodingKey {
        case tables, skipped
        case recordedOn = "recorded_on", totalBytes = "total_bytes"
    }
}

/// The `table_sizes` task (args `{}`): records today's size of each maintained table that
/// exists in `maintenance_table_sizes` (one row per table and New York date; a second run the
/// same day overwrites). Hypertables are measured with `hypertable_detailed_size`, whose
/// figures include every chunk.
public struct TableSizesTask: JobTask {
    /// `table_sizes`.
    public let name = "table_sizes"
    /// The tables measured.
    public let tables: [String]

    /// The market-data tables and closebell's own.
    public static let defaultTables = [
        "market_data_daily", "volume_slots", "ticker_metadata", "ticker_volume_stats", "ticker_universe",
        "ticker_earnings", "market_data_completeness", "market_data_quarantine", "sic_sector_map", "polygon_api_budget",
        "maintenance_jobs", "maintenance_cycle_runs", "maintenance_table_sizes",
    ]

    /// Creates the task for `tables` (default: `defaultTables`).
    public init(tables: [String] = TableSizesTask.defaultTables) {
        self.tables = tables
    }

    private struct Arguments: Decodable {}

    /// Measures and records the sizes.
    public func run(_ context: JobContext) async throws -> JobResult {
        _ = try context.decodeArgs(Arguments.self, allowedKeys: [])
        let connection = try await context.connect()
        defer { Task { await connection.close() } }
        let tables = self.tables
        let report = try await connection.withSession { session in try Self.record(session, tables: tables) }
        context.logger.info("table_sizes_recorded", metadata: [
            "tables": "\(report.tables.count)", "total_bytes": "\(report.totalBytes)", "skipped": "\(report.skipped.joined(separator: ","))",
        ])
        return try JobResult(report)
    }

    /// Measures `tables` and upserts today's rows; one short transaction for the writes.
    static func record(_ session: PostgresSession, tables: [String]) throws -> TableSizesReport {
        let timescale = try session.query("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").count > 0
        let today: String = try session.query("SELECT ((now() AT TIME ZONE 'America/New_York')::date)::text AS d").first?.decode("d") ?? ""
        var sizes: [RecordedTableSize] = []
        var skipped: [String] = []
        for table in tables {
            // to_regclass takes the name as data: nothing from config is spliced into SQL.
            guard let oidRow = try session.query(
                "SELECT c.oid::bigint AS oid FROM pg_class c WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p')", [table]).first else {
                skipped.append(table)
                continue
            }
            let oid: Int64 = try oidRow.decode("oid")
            var isHypertable = false
            if timescale {
                isHypertable = try session.query(
                    """
                    SELECT 1 FROM timescaledb_information.hypertables h
                     WHERE format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass = $1::oid::regclass
                    """, [oid]).count > 0
            }
            let row: PostgresRow?
            if isHypertable {
                row = try session.query(
                    """
                    SELECT coalesce(s.total_bytes, 0) AS total, coalesce(s.table_bytes, 0) + coalesce(s.toast_bytes, 0) AS heap,
                           coalesce(s.index_bytes, 0) AS idx, coalesce(approximate_row_count($1::oid::regclass), 0)::bigint AS rows
                      FROM hypertable_detailed_size($1::oid::regclass) s
                    """, [oid]).first
            } else {
                row = try session.query(
                    """
                    SELECT pg_total_relation_size($1::oid) AS total, pg_table_size($1::oid) AS heap, pg_indexes_size($1::oid) AS idx,
                           greatest(coalesce((SELECT sum(greatest(c.reltuples, 0)) FROM pg_class c
                                               WHERE c.oid = $1::oid OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::oid)), 0), 0)::bigint AS rows
                    """, [oid]).first
            }
            guard let row else { continue }
            sizes.append(RecordedTableSize(
                table: table, totalBytes: try row.decode("total"), tableBytes: try row.decode("heap"),
                indexBytes: try row.decode("idx"), rowEstimate: try row.decode("rows")))
        }
        let measured = sizes
        try session.transaction { tx in
            for size in measured {
                _ = try tx.query(
                    """
                    INSERT INTO maintenance_table_sizes (recorded_on, table_name, total_bytes, table_bytes, index_bytes, row_estimate)
                    VALUES ($1::date, $2, $3, $4, $5, $6)
                    ON CONFLICT (recorded_on, table_name) DO UPDATE
                       SET total_bytes = EXCLUDED.total_bytes, table_bytes = EXCLUDED.table_bytes,
                           index_bytes = EXCLUDED.index_bytes, row_estimate = EXCLUDED.row_estimate
                    """, [today, size.table, size.totalBytes, size.tableBytes, size.indexBytes, size.rowEstimate])
            }
        }
        return TableSizesReport(recordedOn: today, tables: sizes, skipped: skipped, totalBytes: sizes.reduce(0) { $0 + $1.totalBytes })
    }
}
