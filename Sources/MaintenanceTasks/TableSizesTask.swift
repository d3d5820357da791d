import Foundation
import Backup
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
public struct TableSizesReport: TaskResult, Equatable {
    /// The New York date the sizes were recorded for.
    public var recordedOn: String
    /// One entry per existing table.
    public var tables: [RecordedTableSize]
    /// Configured tables that do not exist.
    public var skipped: [String]
    /// Sum of `total_bytes`.
    public var totalBytes: Int64
    /// `pg_database_size` of the whole database.
    public var databaseBytes: Int64
    /// The backup folder's filesystem: size and free bytes (nil when it could not be examined).
    public var backupFilesystemBytes: Int64?
    /// Free bytes on the backup folder's filesystem (for unprivileged users).
    public var backupFilesystemFree: Int64?

    enum CodingKeys: String, CodingKey {
        case tables, skipped
        case recordedOn = "recorded_on", totalBytes = "total_bytes", databaseBytes = "database_bytes"
        case backupFilesystemBytes = "backup_fs_bytes", backupFilesystemFree = "backup_fs_free"
    }
}

/// The `table_sizes` task (args `{}`): records today's size of every maintained or configured
/// table that exists in `maintenance_table_sizes` (one row per table and New York date; a
/// second run the same day overwrites), and the whole database's size with the backup
/// folder's filesystem use in `maintenance_capacity`. Hypertables are measured with
/// `hypertable_detailed_size`, whose figures include every chunk.
public struct TableSizesTask: JobTask {
    /// `table_sizes`: its arguments and summary (the `maintenance_task_types` row).
    public static let declaration = TaskDeclaration(
        name: "table_sizes",
        summary: "Records today's size of each maintained or configured table in maintenance_table_sizes, and the database size and backup filesystem use in maintenance_capacity.")
    /// The tables measured: closebell's own and the market-data tables, plus every table the
    /// configuration names (retention, vacuum, extra ones), without duplicates.
    public let tables: [String]
    /// The backup folder whose filesystem is measured; nil skips it.
    public let backupDirectory: URL?

    /// The market-data tables and closebell's own, always measured when they exist.
    public static let defaultTables = [
        "market_data_daily", "volume_slots", "ticker_metadata", "ticker_volume_stats", "ticker_universe",
        "ticker_earnings", "market_data_completeness", "market_data_quarantine", "sic_sector_map", "polygon_api_budget",
        "maintenance_jobs", "maintenance_cycle_runs", "maintenance_table_sizes",
    ]

    /// Creates the task for `defaultTables` plus `configured` (tables named by retention,
    /// vacuum and `table_sizes.tables`), measuring the filesystem of `backupDirectory`.
    public init(configured: [String] = [], backupDirectory: URL? = nil) {
        var seen = Set<String>()
        self.tables = (Self.defaultTables + configured).filter { !$0.isEmpty && seen.insert($0).inserted }
        self.backupDirectory = backupDirectory
    }

    private struct Arguments: Decodable {}

    /// Measures and records the sizes.
    public func run(_ context: JobContext) async throws -> TableSizesReport {
        _ = try arguments(Arguments.self, of: context)
        let connection = try await context.connect()
        defer { Task { await connection.close() } }
        let tables = self.tables
        let filesystem = backupDirectory.flatMap { BackupFiles.filesystem(of: $0) }
        let newestBackup = backupDirectory.flatMap { BackupFiles.scan($0).latestDate }
        let directory = backupDirectory?.path
        let report = try await connection.withSession { session in
            try Self.record(session, tables: tables, backupDirectory: directory, filesystem: filesystem, newestBackup: newestBackup)
        }
        context.logger.info("table_sizes_recorded", metadata: [
            "tables": "\(report.tables.count)", "total_bytes": "\(report.totalBytes)", "skipped": "\(report.skipped.joined(separator: ","))",
        ])
        return report
    }

    /// Measures `tables` and the database, and upserts today's rows; one short transaction for the writes.
    static func record(_ session: PostgresSession, tables: [String], backupDirectory: String? = nil,
                       filesystem: (bytes: Int64, free: Int64)? = nil, newestBackup: Date? = nil) throws -> TableSizesReport {
        let timescale = try session.query("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").count > 0
        let today: String = try session.query("SELECT ((now() AT TIME ZONE 'America/New_York')::date)::text AS d").first?.decode("d") ?? ""
        var sizes: [RecordedTableSize] = []
        var skipped: [String] = []
        for table in tables {
            // to_regclass takes the name as data: nothing from config is spliced into SQL.
            guard let oidRow = try session.query(
                "SELECT c.oid::bigint AS oid FROM pg_class c WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p')", [table]).first else {
                // A missing default table is a feature not installed; a missing configured one is worth saying.
                if !defaultTables.contains(table) { skipped.append(table) }
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
        let databaseBytes: Int64 = try session.query("SELECT pg_database_size(current_database()) AS b").first?.decode("b") ?? 0
        try session.transaction { tx in
            _ = try tx.query(
                """
                INSERT INTO maintenance_capacity (recorded_on, recorded_at, database_bytes, backup_directory, backup_fs_bytes, backup_fs_free, newest_backup_at)
                VALUES ($1::date, now(), $2, $3, $4, $5, $6)
                ON CONFLICT (recorded_on) DO UPDATE
                   SET recorded_at = EXCLUDED.recorded_at, database_bytes = EXCLUDED.database_bytes,
                       backup_directory = EXCLUDED.backup_directory, backup_fs_bytes = EXCLUDED.backup_fs_bytes,
                       backup_fs_free = EXCLUDED.backup_fs_free, newest_backup_at = EXCLUDED.newest_backup_at
                """, [today, databaseBytes, backupDirectory, filesystem?.bytes, filesystem?.free, newestBackup])
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
        return TableSizesReport(recordedOn: today, tables: sizes, skipped: skipped, totalBytes: sizes.reduce(0) { $0 + $1.totalBytes },
                                databaseBytes: databaseBytes, backupFilesystemBytes: filesystem?.bytes, backupFilesystemFree: filesystem?.free)
    }
}
