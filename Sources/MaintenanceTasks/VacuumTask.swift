import Foundation
import JobQueue
import PostgresClient
import Toolkit

/// Settings of the `vacuum` task.
public struct VacuumSettings: Sendable, Equatable {
    /// The maintained tables; those that do not exist are skipped and reported.
    public var tables: [String]
    /// With `reindex: true`, an index is rebuilt when its estimated bloat (the share of its
    /// size a freshly built index would not need) is at least this (default 0.30).
    public var reindexBloatThreshold: Double
    /// Indexes smaller than this are never rebuilt (default 1 MiB): small ones are not worth it.
    public var reindexMinimumBytes: Int64

    /// The market-data tables and closebell's own.
    public static let defaultTables = [
        "market_data_daily", "volume_slots", "ticker_metadata", "ticker_volume_stats", "ticker_universe",
        "ticker_earnings", "market_data_completeness", "market_data_quarantine", "polygon_api_budget",
        "maintenance_jobs", "maintenance_cycle_runs",
    ]

    /// Creates settings; every argument has the documented default.
    public init(tables: [String] = VacuumSettings.defaultTables, reindexBloatThreshold: Double = 0.30, reindexMinimumBytes: Int64 = 1 << 20) {
        self.tables = tables
        self.reindexBloatThreshold = reindexBloatThreshold
        self.reindexMinimumBytes = reindexMinimumBytes
    }

    /// Checks names and ranges.
    public func validate() throws {
        for table in tables where !Catalog.isPlainName(table) { throw MaintenanceError.invalidTableName(table) }
        guard (0...1).contains(reindexBloatThreshold) else {
            throw MaintenanceError.invalidSetting(key: "vacuum.reindex_bloat_threshold", reason: "must be between 0 and 1, got \(reindexBloatThreshold)")
        }
        guard reindexMinimumBytes >= 0 else {
            throw MaintenanceError.invalidSetting(key: "vacuum.reindex_minimum_bytes", reason: "must not be negative")
        }
    }
}

extension VacuumSettings: Decodable {
    /// The keys of the config file's `vacuum:` section.
    enum CodingKeys: String, CodingKey {
        case tables, reindexBloatThreshold = "reindex_bloat_threshold", reindexMinimumBytes = "reindex_minimum_bytes"
    }

    /// Reads the `vacuum:` section: absent keys keep their defaults; then the whole is checked
    /// (`validate`), a refusal naming the key.
    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        reindexBloatThreshold = try c.setting(.reindexBloatThreshold, reindexBloatThreshold, min: 0)
        reindexMinimumBytes = try c.setting(.reindexMinimumBytes, reindexMinimumBytes, min: 0)
        tables = try c.setting(.tables, default: tables)
        do {
            try validate()
        } catch let error as MaintenanceError {
            throw error.settingError(at: c.codingPath, section: "vacuum")
        }
    }
}

/// Sizes of a table at one moment.
public struct TableSizes: Sendable, Codable, Equatable {
    /// `pg_total_relation_size`: heap, TOAST, free space map, visibility map and indexes.
    public var totalBytes: Int64
    /// `pg_table_size`: everything but the indexes.
    public var tableBytes: Int64
    /// `pg_indexes_size`.
    public var indexBytes: Int64
    /// `pg_stat_user_tables.n_dead_tup` (the statistics collector's estimate).
    public var deadTuples: Int64
    /// `pg_stat_user_tables.n_live_tup`.
    public var liveTuples: Int64

    enum CodingKeys: String, CodingKey {
        case totalBytes = "total_bytes", tableBytes = "table_bytes", indexBytes = "index_bytes"
        case deadTuples = "dead_tuples", liveTuples = "live_tuples"
    }
}

/// What `vacuum` did to one table.
public struct VacuumTableReport: Sendable, Codable, Equatable {
    /// `schema.table`.
    public var table: String
    /// Sizes before VACUUM.
    public var before: TableSizes
    /// Sizes after VACUUM (and REINDEX).
    public var after: TableSizes
    /// `before.total_bytes - after.total_bytes` (VACUUM returns space to the OS only from the
    /// end of the table; the rest becomes reusable inside it).
    public var bytesFreed: Int64
    /// Wall time.
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case table, before, after, seconds
        case bytesFreed = "bytes_freed"
    }
}

/// One index rebuilt with REINDEX INDEX CONCURRENTLY.
public struct ReindexReport: Sendable, Codable, Equatable {
    /// `schema.index`.
    public var index: String
    /// The estimated bloat that triggered it (0...1).
    public var estimatedBloat: Double
    /// Index size before.
    public var bytesBefore: Int64
    /// Index size after.
    public var bytesAfter: Int64

    enum CodingKeys: String, CodingKey {
        case index
        case estimatedBloat = "estimated_bloat"
        case bytesBefore = "bytes_before"
        case bytesAfter = "bytes_after"
    }
}

/// The `vacuum` task's result.
public struct VacuumReport: TaskResult, Equatable {
    /// One entry per vacuumed table.
    public var tables: [VacuumTableReport]
    /// Indexes rebuilt.
    public var reindexed: [ReindexReport]
    /// B-tree indexes whose bloat was estimated (with `reindex: true`).
    public var indexesChecked: Int
    /// Configured tables that do not exist.
    public var skipped: [SkippedTable]
    /// Sum of the tables' `bytes_freed`.
    public var bytesFreed: Int64

    enum CodingKeys: String, CodingKey {
        case tables, reindexed, skipped
        case indexesChecked = "indexes_checked"
        case bytesFreed = "bytes_freed"
    }
}

/// The `vacuum` task: `VACUUM (ANALYZE)` of each maintained table (or those named in args),
/// each its own statement outside any transaction; with `reindex: true`, REINDEX INDEX
/// CONCURRENTLY of the B-tree indexes whose estimated bloat passes the threshold.
///
/// Bloat estimate (no extension needed): a fresh B-tree needs about
/// `reltuples × (12 + MAXALIGN(Σ avg_width of its key columns from pg_stats))` bytes of leaf
/// space at the default 90 % fill factor, plus the metapage; the estimated bloat is
/// `1 − expected ÷ actual size`. Expression and partial-key widths are unknown, so expression
/// indexes are not estimated. It errs on the low side for wide keys (internal pages are ignored).
public struct VacuumTask: JobTask {
    /// `vacuum`: its arguments and summary (the `maintenance_task_types` row).
    public static let declaration = TaskDeclaration(
        name: "vacuum", arguments: ["tables": .stringArray, "reindex": .boolean],
        summary: "VACUUM (ANALYZE) of the maintained tables, optional REINDEX CONCURRENTLY.",
        reports: [.bytesFreed])
    /// Tables and reindex thresholds.
    public let settings: VacuumSettings

    /// Creates the task.
    public init(settings: VacuumSettings = VacuumSettings()) {
        self.settings = settings
    }

    struct Args: Decodable {
        var tables: [String]?
        var reindex: Bool?
    }

    public func run(_ context: JobContext) async throws -> VacuumReport {
        let args = try arguments(Args.self, of: context)
        try settings.validate()
        let connection = try await context.connect()
        do {
            let report = try await Self.execute(
                settings: settings, tables: args.tables, reindex: args.reindex ?? false, connection: connection,
                timeouts: context.timeouts, checkCancellation: { try context.checkCancellation() })
            await connection.close()
            context.logger.info("vacuum_finished", metadata: ["tables": "\(report.tables.count)", "bytes_freed": "\(report.bytesFreed)"])
            return report
        } catch {
            await connection.close()
            throw error
        }
    }

    static func execute(
        settings: VacuumSettings, tables requested: [String]?, reindex: Bool, connection: PostgresConnection,
        timeouts: TaskTimeouts = TaskTimeouts(), checkCancellation: @escaping @Sendable () throws -> Void
    ) async throws -> VacuumReport {
        // Catalog and size queries have a natural bound; VACUUM and REINDEX are bounded by the
        // job's time limit (and REINDEX's lock waits by lock_timeout).
        try await connection.execute(timeouts.setShortStatementTimeout)
        let (targets, skipped, timescale) = try await connection.withSession { session -> ([ResolvedTable], [SkippedTable], Bool) in
            var targets: [ResolvedTable] = []
            var skipped: [SkippedTable] = []
            if let requested {
                for name in requested {
                    guard let table = try Catalog.table(name, session: session) else { throw MaintenanceError.unknownTable(name) }
                    if !targets.contains(table) { targets.append(table) }
                }
            } else {
                for name in settings.tables {
                    guard let table = try Catalog.table(name, session: session) else {
                        skipped.append(SkippedTable(table: name, reason: "table does not exist"))
                        continue
                    }
                    if !targets.contains(table) { targets.append(table) }
                }
            }
            return (targets, skipped, try Catalog.timescaleVersion(session: session) != nil)
        }
        var reports: [VacuumTableReport] = []
        var reindexed: [ReindexReport] = []
        var checked = 0
        for table in targets {
            try checkCancellation()
            let started = ContinuousClock.now
            let hyper = timescale ? try await isHypertable(table, connection: connection) : false
            let before = try await sizes(of: table, hypertable: hyper, connection: connection)
            // Its own simple-protocol statement: autocommit, never inside a transaction block.
            try await connection.execute("SET statement_timeout = 0")
            try await connection.execute("VACUUM (ANALYZE) \(table.quoted)")
            try await connection.execute(timeouts.setShortStatementTimeout)
            if reindex {
                // A hypertable's own indexes are empty: its chunks' indexes hold the entries.
                let holders = hyper ? try await chunks(of: table, connection: connection) : [table]
                var candidates: [IndexEstimate] = []
                for holder in holders {
                    try await dropLeftoverReindexCopies(of: holder, connection: connection)
                    candidates += try await indexEstimates(of: holder, connection: connection)
                }
                for candidate in candidates {
                    checked += 1
                    guard candidate.bytes >= settings.reindexMinimumBytes, candidate.bloat >= settings.reindexBloatThreshold else { continue }
                    try checkCancellation()
                    // DDL never queues behind a forgotten transaction (every reader of the
                    // table would queue behind the DDL): lock_timeout, then the attempt fails
                    // and is retried later.
                    try await connection.execute("SET statement_timeout = 0")
                    try await connection.execute(timeouts.setDDLLockTimeout)
                    try await connection.execute("REINDEX INDEX CONCURRENTLY \(candidate.quoted)")
                    try await connection.execute("SET lock_timeout = 0")
                    try await connection.execute(timeouts.setShortStatementTimeout)
                    let after: Int64 = try await connection.query(
                        "SELECT pg_relation_size(to_regclass($1)) AS bytes", [candidate.quoted]
                    ).first?.decode("bytes") ?? 0
                    reindexed.append(ReindexReport(
                        index: candidate.name, estimatedBloat: (candidate.bloat * 1000).rounded() / 1000,
                        bytesBefore: candidate.bytes, bytesAfter: after))
                }
            }
            let after = try await sizes(of: table, hypertable: hyper, connection: connection)
            reports.append(VacuumTableReport(
                table: table.qualified, before: before, after: after, bytesFreed: before.totalBytes - after.totalBytes,
                seconds: RetentionTask.seconds(since: started)))
        }
        return VacuumReport(
            tables: reports, reindexed: reindexed, indexesChecked: checked, skipped: skipped,
            bytesFreed: reports.reduce(0) { $0 + $1.bytesFreed })
    }

    /// A REINDEX CONCURRENTLY that was cancelled, timed out or failed leaves an invalid copy
    /// of the index named `<index>_ccnew` (`_ccnew1`, …); an earlier attempt's copies are dropped
    /// before this one estimates and rebuilds.
    static func dropLeftoverReindexCopies(of table: ResolvedTable, connection: PostgresConnection) async throws {
        let leftovers = try await connection.query(
            """
            SELECT format('%I.%I', n.nspname, ci.relname) AS quoted
              FROM pg_index i
              JOIN pg_class ci ON ci.oid = i.indexrelid
              JOIN pg_namespace n ON n.oid = ci.relnamespace
             WHERE i.indrelid = $1::oid AND NOT i.indisvalid AND ci.relname ~ '_ccnew[0-9]*$'
            """, [table.oid])
        for row in leftovers {
            let quoted: String = try row.decode("quoted")
            try await connection.execute("DROP INDEX CONCURRENTLY IF EXISTS \(quoted)")
        }
    }

    static func isHypertable(_ table: ResolvedTable, connection: PostgresConnection) async throws -> Bool {
        try await connection.query(TimescaleSQL.isHypertable, [table.schema, table.name]).first?.decode("hyper") ?? false
    }

    /// The chunks of a hypertable, as tables.
    static func chunks(of table: ResolvedTable, connection: PostgresConnection) async throws -> [ResolvedTable] {
        try await connection.query(TimescaleSQL.chunkTables, [table.quoted]).map { row in
            ResolvedTable(
                oid: try row.decode("oid"), schema: try row.decode("schema"), name: try row.decode("name"),
                quoted: try row.decode("quoted"))
        }
    }

    static func sizes(of table: ResolvedTable, hypertable: Bool, connection: PostgresConnection) async throws -> TableSizes {
        let stats = try await connection.query(
            """
            SELECT pg_total_relation_size($1::oid) AS total_bytes, pg_table_size($1::oid) AS table_bytes,
                   pg_indexes_size($1::oid) AS index_bytes,
                   coalesce(s.n_dead_tup, 0) AS dead_tuples, coalesce(s.n_live_tup, 0) AS live_tuples
              FROM (SELECT 1) one LEFT JOIN pg_stat_user_tables s ON s.relid = $1::oid
            """, [table.oid])
        guard let row = stats.first else { throw MaintenanceError.unknownTable(table.qualified) }
        var sizes = TableSizes(
            totalBytes: try row.decode("total_bytes"), tableBytes: try row.decode("table_bytes"),
            indexBytes: try row.decode("index_bytes"), deadTuples: try row.decode("dead_tuples"),
            liveTuples: try row.decode("live_tuples"))
        if hypertable, let hyper = try await connection.query(TimescaleSQL.hypertableDetailedSize, [table.quoted]).first {
            sizes.totalBytes = try hyper.decode("total_bytes")
            sizes.tableBytes = try hyper.decode("table_bytes")
            sizes.indexBytes = try hyper.decode("index_bytes")
            sizes.deadTuples = try hyper.decode("dead_tuples")
            sizes.liveTuples = try hyper.decode("live_tuples")
        }
        return sizes
    }

    /// An index with its size and estimated bloat.
    struct IndexEstimate: Sendable {
        let name: String
        let quoted: String
        let bytes: Int64
        let bloat: Double
    }

    /// Estimates the bloat of each valid B-tree index of a table (see the type's documentation).
    static func indexEstimates(of table: ResolvedTable, connection: PostgresConnection) async throws -> [IndexEstimate] {
        let rows = try await connection.query(
            """
            SELECT n.nspname || '.' || ci.relname AS name, format('%I.%I', n.nspname, ci.relname) AS quoted,
                   pg_relation_size(ci.oid) AS bytes, greatest(ci.reltuples, 0)::float8 AS tuples,
                   current_setting('block_size')::int AS block_size,
                   (SELECT coalesce(sum(s.avg_width), 0) FROM pg_attribute a
                      JOIN pg_stats s ON s.schemaname = tn.nspname AND s.tablename = ct.relname AND s.attname = a.attname
                     WHERE a.attrelid = ct.oid AND a.attnum = ANY (i.indkey::int2[]))::int AS key_width
              FROM pg_index i
              JOIN pg_class ci ON ci.oid = i.indexrelid
              JOIN pg_namespace n ON n.oid = ci.relnamespace
              JOIN pg_class ct ON ct.oid = i.indrelid
              JOIN pg_namespace tn ON tn.oid = ct.relnamespace
              JOIN pg_am am ON am.oid = ci.relam
             WHERE i.indrelid = $1::oid AND am.amname = 'btree' AND i.indisvalid AND i.indexprs IS NULL
             ORDER BY 1
            """, [table.oid])
        return try rows.map { row in
            let bytes: Int64 = try row.decode("bytes")
            let expected = Self.expectedBtreeBytes(
                tuples: try row.decode("tuples"), keyWidth: try row.decode("key_width"), blockSize: try row.decode("block_size"))
            let bloat = bytes > 0 ? max(0, 1 - Double(expected) / Double(bytes)) : 0
            return IndexEstimate(name: try row.decode("name"), quoted: try row.decode("quoted"), bytes: bytes, bloat: bloat)
        }
    }

    /// The size of a freshly built B-tree with `tuples` entries of `keyWidth` bytes of key:
    /// each entry is an 8-byte index tuple header, the key padded to 8 bytes and a 4-byte line
    /// pointer; leaf pages are filled to 90 % of the space after the page header and B-tree
    /// special area; plus the metapage.
    public static func expectedBtreeBytes(tuples: Double, keyWidth: Int, blockSize: Int) -> Int64 {
        let entry = 8 + ((keyWidth + 7) / 8) * 8 + 4
        let usable = Double(blockSize - 24 - 16) * 0.90
        let leafPages = (tuples * Double(entry) / usable).rounded(.up)
        return Int64(leafPages + 1) * Int64(blockSize)
    }
}
