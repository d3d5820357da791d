import Foundation
import JobQueue
import PostgresClient
import Toolkit

/// One table's retention window: rows whose `column` (a New York date) is before today in
/// New York minus `days` are deleted.
public struct RetentionRule: Sendable, Equatable, Codable {
    /// The table, `name` or `schema.name` (plain identifiers only).
    public var table: String
    /// The `date`, `timestamp` or `timestamptz` column the window applies to.
    public var column: String
    /// The window in days (0 keeps only today).
    public var days: Int
    /// Optional: only rows whose `filterColumn` (compared as text) is one of `filterValues`.
    public var filterColumn: String?
    /// The values `filterColumn` must have for a row to be deleted.
    public var filterValues: [String]

    /// Creates a rule.
    public init(table: String, column: String, days: Int, filterColumn: String? = nil, filterValues: [String] = []) {
        self.table = table
        self.column = column
        self.days = days
        self.filterColumn = filterColumn
        self.filterValues = filterValues
    }
}

/// Settings of the `retention` task.
public struct RetentionSettings: Sendable, Equatable {
    /// The windows, one per table. Defaults: `market_data_daily` 200 days on `date`,
    /// `volume_slots` 30 days on `date`, finished `maintenance_jobs` 30 days on `finished_at`,
    /// `ticker_earnings` 730 days on `date`, `market_data_completeness` 400 days on `day`,
    /// `market_data_quarantine` 90 days on `quarantined_at`.
    public var rules: [RetentionRule]
    /// Rows per DELETE statement (default 10,000).
    public var batchSize: Int
    /// Pause between two batches, to leave I/O to the rest of the server (default none).
    public var pauseBetweenBatches: Duration
    /// The New York date (`YYYY-MM-DD`) the windows count back from. nil (the default): the
    /// server's current date in New York. Set it to replay a run for a given day (tests do,
    /// so their expected rows do not move at midnight).
    public var today: String?
    /// Drop whole range partitions whose upper bound is at or before the cutoff (the way
    /// `drop_chunks` does for hypertables) instead of deleting their rows batch by batch. Only
    /// partitions of a range on the rule's column alone, for rules without a filter. Default off.
    public var dropPartitions: Bool
    /// How long dropping a partition may wait for its parent's lock before the partition is
    /// emptied by batched deletes instead (default 5 s).
    public var dropLockTimeout: Duration

    /// The default windows.
    public static let defaultRules: [RetentionRule] = [
        RetentionRule(table: "market_data_daily", column: "date", days: 200),
        RetentionRule(table: "volume_slots", column: "date", days: 30),
        RetentionRule(table: "maintenance_jobs", column: "finished_at", days: 30,
                      filterColumn: "state", filterValues: ["succeeded", "failed", "cancelled"]),
        RetentionRule(table: "ticker_earnings", column: "date", days: 730),
        RetentionRule(table: "market_data_completeness", column: "day", days: 400),
        RetentionRule(table: "market_data_quarantine", column: "quarantined_at", days: 90),
    ]

    /// Creates settings; every argument has the documented default.
    public init(
        rules: [RetentionRule] = RetentionSettings.defaultRules, batchSize: Int = 10_000, pauseBetweenBatches: Duration = .zero,
        today: String? = nil, dropPartitions: Bool = false, dropLockTimeout: Duration = .seconds(5)
    ) {
        self.rules = rules
        self.batchSize = batchSize
        self.pauseBetweenBatches = pauseBetweenBatches
        self.today = today
        self.dropPartitions = dropPartitions
        self.dropLockTimeout = dropLockTimeout
    }

    /// Adds a rule, replacing the one for the same table.
    public mutating func setRule(_ rule: RetentionRule) {
        rules.removeAll { $0.table == rule.table }
        rules.append(rule)
    }

    /// Checks ranges and names; throws `MaintenanceError.invalidSetting` / `invalidTableName`.
    public func validate() throws {
        guard (1...1_000_000).contains(batchSize) else {
            throw MaintenanceError.invalidSetting(key: "retention.batch_size", reason: "must be 1...1000000, got \(batchSize)")
        }
        guard dropLockTimeout > .zero else {
            throw MaintenanceError.invalidSetting(key: "retention.drop_lock_timeout_ms", reason: "must be positive")
        }
        guard pauseBetweenBatches >= .zero else {
            throw MaintenanceError.invalidSetting(key: "retention.pause_between_batches", reason: "must not be negative")
        }
        if let today {
            let parts = today.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.map(\.count) == [4, 2, 2], parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }) else {
                throw MaintenanceError.invalidSetting(key: "retention.today", reason: "must be a YYYY-MM-DD date, got \(today)")
            }
        }
        var seen = Set<String>()
        for rule in rules {
            guard Catalog.isPlainName(rule.table) else { throw MaintenanceError.invalidTableName(rule.table) }
            guard Catalog.isPlainName(rule.column, allowSchema: false) else {
                throw MaintenanceError.invalidColumnName(table: rule.table, column: rule.column)
            }
            if let filter = rule.filterColumn, !Catalog.isPlainName(filter, allowSchema: false) {
                throw MaintenanceError.invalidColumnName(table: rule.table, column: filter)
            }
            guard (0...100_000).contains(rule.days) else {
                throw MaintenanceError.invalidSetting(key: "retention.tables.\(rule.table).days", reason: "must be 0...100000, got \(rule.days)")
            }
            guard seen.insert(rule.table).inserted else {
                throw MaintenanceError.invalidSetting(key: "retention.tables.\(rule.table)", reason: "configured twice")
            }
        }
    }
}

extension RetentionSettings: Decodable {
    /// The keys of the config file's `retention:` section.
    enum CodingKeys: String, CodingKey {
        case batchSize = "batch_size", pauseMilliseconds = "pause_ms", dropPartitions = "drop_partitions"
        case dropLockTimeoutMilliseconds = "drop_lock_timeout_ms", tables
    }

    /// Reads the `retention:` section: absent keys keep their defaults; `tables` changes or adds
    /// windows (a known table given a number of days keeps its column and filter); then the whole
    /// is checked (`validate`), a refusal naming the key.
    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        batchSize = try c.setting(.batchSize, batchSize, min: 1)
        if let milliseconds = try c.setting(.pauseMilliseconds, nil as Double?, min: 0) {
            pauseBetweenBatches = .milliseconds(Int64(milliseconds))
        }
        dropPartitions = try c.setting(.dropPartitions, default: dropPartitions)
        if let milliseconds = try c.setting(.dropLockTimeoutMilliseconds, nil as Double?, min: 1) {
            dropLockTimeout = .milliseconds(Int64(milliseconds))
        }
        // Table names are data: any key is a table.
        try c.forEachEntry(of: .tables) { tables, table in
            let name = table.stringValue
            guard let window = try tables.decodeIfPresent(RetentionWindow.self, forKey: table) else {
                throw tables.invalid(table, RetentionWindow.expected)
            }
            switch window {
            case .days(let days):
                var rule = rules.first { $0.table == name } ?? RetentionRule(table: name, column: "date", days: days)
                rule.days = days
                setRule(rule)
            case .rule(let column, let days):
                setRule(RetentionRule(table: name, column: column, days: days))
            }
        }
        do {
            try validate()
        } catch let error as MaintenanceError {
            throw error.settingError(at: c.codingPath, section: "retention")
        }
    }
}

/// One entry of `retention.tables`: a number of days, or `{column: NAME, days: N}`.
private enum RetentionWindow: Decodable {
    /// Days only: a known table keeps its column and filter, a new one uses `date`.
    case days(Int)
    /// A column and days (the column defaults to `date`).
    case rule(column: String, days: Int)

    enum CodingKeys: String, CodingKey {
        case column, days
    }

    /// What a refused entry should have been.
    static let expected = "expected a number of days or {column: NAME, days: N}"

    init(from decoder: any Decoder) throws {
        if let days = try? decoder.singleValueContainer().decode(Int.self) {
            self = .days(days)
            return
        }
        let c: KeyedDecodingContainer<CodingKeys>
        do {
            c = try decoder.container(keyedBy: CodingKeys.self)
        } catch DecodingError.typeMismatch {
            throw DecodingError.dataCorrupted(DecodingError.Context(
                codingPath: decoder.codingPath, debugDescription: Self.expected))
        }
        let days = try c.decode(Int.self, forKey: .days)
        guard days >= 0 else { throw c.invalid(.days, "must be at least 0, got \(days)") }
        self = .rule(column: try c.setting(.column, "date"), days: days)
    }
}

/// What `retention` did to one table.
public struct RetentionTableReport: Sendable, Codable, Equatable {
    /// `schema.table`.
    public var table: String
    /// The time column.
    public var column: String
    /// The window in days.
    public var days: Int
    /// Rows dated before this New York date were removed (`YYYY-MM-DD`).
    public var cutoff: String
    /// `batched_delete` (one physical table at a time: partitions, inheritance children and
    /// chunks each get their own batches), `drop_chunks`, or `count` (dry run).
    public var method: String
    /// Rows deleted (batched delete), or rows that would be (dry run).
    public var rows: Int
    /// Chunks dropped (or droppable, dry run) on a hypertable.
    public var chunks: Int?
    /// Partitions dropped whole (or droppable, dry run) with `drop_partitions`.
    public var partitions: Int?
    /// DELETE statements run (at least one per physical table).
    public var batches: Int
    /// Wall time.
    public var seconds: Double
    /// Anything the user should know (drop_chunks granularity, foreign partitions left alone).
    public var note: String?

    enum CodingKeys: String, CodingKey {
        case table, column, days, cutoff, method, chunks, partitions, batches, seconds, note
        case rows = "rows_removed"
    }
}

/// A configured table that was not processed, and why.
public struct SkippedTable: Sendable, Codable, Equatable {
    /// The table as configured.
    public var table: String
    /// Why it was skipped.
    public var reason: String
}

/// The `retention` task's result (stored in `maintenance_jobs.result`).
public struct RetentionReport: TaskResult, Equatable {
    /// True when nothing was deleted, only counted.
    public var dryRun: Bool
    /// Rows per batch.
    public var batchSize: Int
    /// One entry per processed table.
    public var tables: [RetentionTableReport]
    /// Configured tables that do not exist.
    public var skipped: [SkippedTable]
    /// Sum of `rows_removed`.
    public var totalRowsRemoved: Int

    enum CodingKeys: String, CodingKey {
        case tables, skipped
        case dryRun = "dry_run"
        case batchSize = "batch_size"
        case totalRowsRemoved = "total_rows_removed"
    }
}

/// The `retention` task: deletes rows past each table's window in short batches (plain
/// PostgreSQL) or drops whole chunks (TimescaleDB hypertables).
///
/// Args: `tables` (a subset of the configured tables; an unconfigured one is an error naming
/// it), `batch_size`, `dry_run` (count only).
public struct RetentionTask: JobTask {
    /// `retention`: its arguments and summary (the `maintenance_task_types` row).
    public static let declaration = TaskDeclaration(
        name: "retention", arguments: ["tables": .stringArray, "batch_size": .integer, "dry_run": .boolean],
        summary: "Deletes rows older than each table's retention window.",
        reports: [.totalRowsRemoved])
    /// The windows and batching.
    public let settings: RetentionSettings

    /// Creates the task.
    public init(settings: RetentionSettings = RetentionSettings()) {
        self.settings = settings
    }

    struct Args: Decodable {
        var tables: [String]?
        var batchSize: Int?
        var dryRun: Bool?
        enum CodingKeys: String, CodingKey {
            case tables
            case batchSize = "batch_size"
            case dryRun = "dry_run"
        }
    }

    /// The checkpoint: finished tables, and the rows removed so far from the current one.
    struct Progress: Codable {
        var done: [RetentionTableReport] = []
        var currentTable: String?
        var currentRows = 0
        var currentBatches = 0
    }

    /// A rule checked against the catalog.
    struct Target: Sendable {
        let rule: RetentionRule
        let table: ResolvedTable
        let column: ResolvedColumn
        let filterColumn: ResolvedColumn?
        /// The hypertable's time column type when drop_chunks applies.
        let hypertable: Bool
        /// TimescaleDB is installed (chunks may be compressed).
        let timescale: Bool
    }

    public func run(_ context: JobContext) async throws -> RetentionReport {
        let args = try arguments(Args.self, of: context)
        var effective = settings
        if let batch = args.batchSize {
            guard batch >= 1 else { throw InvalidJobArguments(task: name, reason: "batch_size must be at least 1") }
            effective.batchSize = batch
        }
        try effective.validate()
        let previous = try? context.previousProgress?.decode(Progress.self)
        let connection = try await context.connect()
        do {
            let report = try await Self.execute(
                settings: effective, tables: args.tables, dryRun: args.dryRun ?? false, connection: connection,
                previous: previous ?? Progress(), timeouts: context.timeouts, checkCancellation: { try context.checkCancellation() },
                checkpoint: { try await context.checkpoint($0) })
            await connection.close()
            context.logger.info("retention_finished", metadata: ["rows_removed": "\(report.totalRowsRemoved)", "tables": "\(report.tables.count)"])
            return report
        } catch {
            await connection.close()
            throw error
        }
    }

    /// Resolves the rules to run: all configured ones, or those named in `requested`.
    static func targets(settings: RetentionSettings, requested: [String]?, session: PostgresSession) throws -> ([Target], [SkippedTable]) {
        var rules = settings.rules
        if let requested {
            var chosen: [RetentionRule] = []
            for name in requested {
                guard Catalog.isPlainName(name) else { throw MaintenanceError.invalidTableName(name) }
                let resolved = try Catalog.table(name, session: session)
                let match = settings.rules.first { rule in
                    if rule.table == name { return true }
                    guard let resolved, let ruleTable = try? Catalog.table(rule.table, session: session) else { return false }
                    return ruleTable.oid == resolved.oid
                }
                guard let match else {
                    if resolved == nil { throw MaintenanceError.unknownTable(name) }
                    throw MaintenanceError.tableNotConfigured(table: name, configured: settings.rules.map(\.table))
                }
                if !chosen.contains(match) { chosen.append(match) }
            }
            rules = chosen
        }
        let timescale = try Catalog.timescaleVersion(session: session) != nil
        var targets: [Target] = []
        var skipped: [SkippedTable] = []
        for rule in rules {
            guard let table = try Catalog.table(rule.table, session: session) else {
                skipped.append(SkippedTable(table: rule.table, reason: "table does not exist"))
                continue
            }
            guard let column = try Catalog.column(rule.column, of: table, session: session) else {
                throw MaintenanceError.unknownColumn(table: table.qualified, column: rule.column)
            }
            guard ["date", "timestamp", "timestamptz"].contains(column.typeName) else {
                throw MaintenanceError.unsupportedColumnType(table: table.qualified, column: rule.column, type: column.displayType)
            }
            var filter: ResolvedColumn?
            if let name = rule.filterColumn {
                guard let found = try Catalog.column(name, of: table, session: session) else {
                    throw MaintenanceError.unknownColumn(table: table.qualified, column: name)
                }
                filter = found
            }
            var hypertable = false
            if timescale, filter == nil {
                // drop_chunks works on the time dimension only; another column gets batched deletes.
                let dimension: String? = try session.query(TimescaleSQL.timeDimension, [table.schema, table.name])
                    .first?.decodeIfPresent("column_name")
                hypertable = dimension == rule.column
            }
            targets.append(Target(rule: rule, table: table, column: column, filterColumn: filter, hypertable: hypertable, timescale: timescale))
        }
        return (targets, skipped)
    }

    static func execute(
        settings: RetentionSettings, tables: [String]?, dryRun: Bool, connection: PostgresConnection, previous: Progress,
        timeouts: TaskTimeouts = TaskTimeouts(), checkCancellation: @escaping @Sendable () throws -> Void,
        checkpoint: @escaping @Sendable (Progress) async throws -> Void
    ) async throws -> RetentionReport {
        // Every statement here has a natural bound (a catalog query, one batch of batch_size
        // rows, one chunk or partition): statement_timeout also bounds a lock wait, so a batch
        // blocked by another transaction fails instead of waiting for ever.
        try await connection.execute(timeouts.setShortStatementTimeout)
        let (targets, skipped) = try await connection.withSession { session in
            try Self.targets(settings: settings, requested: tables, session: session)
        }
        var progress = previous
        var reports: [RetentionTableReport] = []
        for target in targets {
            if let done = progress.done.first(where: { $0.table == target.table.qualified }), !dryRun {
                reports.append(done)
                continue
            }
            try checkCancellation()
            let started = ContinuousClock.now
            let cutoff: String = try await connection.query(RetentionSQL.cutoffDate, [target.rule.days, settings.today])
                .first!.decode("cutoff")
            var report = RetentionTableReport(
                table: target.table.qualified, column: target.rule.column, days: target.rule.days, cutoff: cutoff,
                method: "batched_delete", rows: 0, chunks: nil, partitions: nil, batches: 0, seconds: 0, note: nil)
            let filterValues = target.rule.filterValues
            if target.hypertable {
                report.method = dryRun ? "count" : "drop_chunks"
                // The rows of the chunks that go are counted first: drop_chunks returns only names.
                let droppable = try await connection.query(
                    TimescaleSQL.countDroppableChunks(columnType: target.column.typeName), [target.table.quoted, cutoff]).first
                report.rows = try droppable?.decode("rows", as: Int.self) ?? 0
                report.chunks = try droppable?.decode("chunks", as: Int.self) ?? 0
                if !dryRun {
                    report.chunks = try await connection.query(
                        TimescaleSQL.dropChunks(columnType: target.column.typeName), [target.table.quoted, cutoff]
                    ).first?.decode("chunks", as: Int.self) ?? 0
                }
                report.note = "drop_chunks removes only chunks whose whole time range is before the cutoff; rows in a chunk that straddles it stay until the chunk is entirely past it"
            } else {
                if !dryRun {
                    // Resuming: the rows and statements of the interrupted attempt count too.
                    if progress.currentTable == target.table.qualified {
                        report.rows = progress.currentRows
                        report.batches = progress.currentBatches
                    }
                    progress.currentTable = target.table.qualified
                }
                if settings.dropPartitions, target.filterColumn == nil {
                    let dropped = try await Self.dropPartitions(
                        target: target, cutoff: cutoff, dryRun: dryRun, lockTimeout: settings.dropLockTimeout, connection: connection)
                    report.partitions = dropped.partitions
                    report.rows += dropped.rows
                    if !dryRun, dropped.partitions > 0 {
                        var saved = progress
                        saved.currentRows = report.rows
                        saved.currentBatches = report.batches
                        try await checkpoint(saved)
                    }
                }
                let leaves = try await Self.leaves(of: target.table, timescale: target.timescale, connection: connection)
                if leaves.foreign > 0 {
                    report.note = "\(leaves.foreign) foreign-table partition(s) left alone: retention deletes only from local tables"
                }
                let filter: [String]? = target.filterColumn == nil ? nil : filterValues
                if dryRun {
                    report.method = "count"
                    for leaf in leaves.tables {
                        try checkCancellation()
                        let sql = RetentionSQL.count(
                            leaf: leaf.quoted, column: target.column.quoted, columnType: target.column.typeName,
                            filterColumn: target.filterColumn?.quoted, compressed: leaf.compressed)
                        let params: [any PostgresBindable] = filter.map { [cutoff, $0] } ?? [cutoff]
                        report.rows += try await Self.ignoringDroppedLeaf {
                            try await connection.query(sql, params).first?.decode("n", as: Int.self) ?? 0
                        } ?? 0
                    }
                } else {
                    for leaf in leaves.tables {
                        if leaf.compressed {
                            try checkCancellation()
                            let sql = RetentionSQL.compressedChunkDelete(
                                chunk: leaf.quoted, column: target.column.quoted, columnType: target.column.typeName,
                                filterColumn: target.filterColumn?.quoted)
                            let params: [any PostgresBindable] = filter.map { [cutoff, $0] } ?? [cutoff]
                            report.rows += try await Self.ignoringDroppedLeaf { try await connection.query(sql, params).affectedRows ?? 0 } ?? 0
                            report.batches += 1
                            var saved = progress
                            saved.currentRows = report.rows
                            saved.currentBatches = report.batches
                            try await checkpoint(saved)
                            continue
                        }
                        let sql = RetentionSQL.batchDelete(
                            leaf: leaf.quoted, column: target.column.quoted, columnType: target.column.typeName,
                            filterColumn: target.filterColumn?.quoted)
                        let startRows = report.rows, startBatches = report.batches
                        let snapshot = progress
                        let (rows, batches) = try await Self.ignoringDroppedLeaf {
                            try await deleteInBatches(
                                connection: connection, sql: sql, leaf: leaf.quoted, table: target.table.qualified,
                                cutoff: cutoff, filterValues: filter,
                                batchSize: settings.batchSize, pause: settings.pauseBetweenBatches, timeouts: timeouts,
                                checkCancellation: checkCancellation,
                                afterBatch: { rows, batches in
                                    var saved = snapshot
                                    saved.currentRows = startRows + rows
                                    saved.currentBatches = startBatches + batches
                                    try await checkpoint(saved)
                                })
                        } ?? (0, 0)
                        report.rows += rows
                        report.batches += batches
                    }
                }
            }
            report.seconds = Self.seconds(since: started)
            reports.append(report)
            if !dryRun {
                progress.done.append(report)
                progress.currentTable = nil
                progress.currentRows = 0
                progress.currentBatches = 0
                try await checkpoint(progress)
            }
        }
        return RetentionReport(
            dryRun: dryRun, batchSize: settings.batchSize, tables: reports, skipped: skipped,
            totalRowsRemoved: dryRun ? 0 : reports.reduce(0) { $0 + $1.rows })
    }

    /// One physical table holding rows of a retention table.
    struct Leaf {
        /// `schema.name`, quoted.
        let quoted: String
        /// A compressed TimescaleDB chunk (deleted from through TimescaleDB, not by ctid).
        let compressed: Bool
    }

    /// The physical tables holding the table's rows (see `RetentionSQL.leaves`), and how many
    /// foreign tables are among its partitions (left alone).
    static func leaves(of table: ResolvedTable, timescale: Bool, connection: PostgresConnection) async throws -> (tables: [Leaf], foreign: Int) {
        let rows = try await connection.query(RetentionSQL.leaves, [table.oid])
        let compressed: Set<String> = timescale
            ? Set(try await connection.query(RetentionSQL.compressedChunks, [table.schema, table.name]).map { try $0.decode("quoted") })
            : []
        var tables: [Leaf] = []
        var foreign = 0
        for row in rows {
            if try row.decode("relkind", as: String.self) == "f" {
                foreign += 1
            } else {
                let quoted: String = try row.decode("quoted")
                tables.append(Leaf(quoted: quoted, compressed: compressed.contains(quoted)))
            }
        }
        return (tables, foreign)
    }

    /// Drops the partitions of the target entirely before the cutoff (see
    /// `RetentionSQL.droppablePartitions`), counting their rows in the same transaction; a dry
    /// run only counts the partitions (their rows are counted with every other leaf's).
    /// A partition whose parent stays locked past `lockTimeout` is left to the batched delete.
    static func dropPartitions(
        target: Target, cutoff: String, dryRun: Bool, lockTimeout: Duration, connection: PostgresConnection
    ) async throws -> (partitions: Int, rows: Int) {
        let sql = RetentionSQL.droppablePartitions(columnType: target.column.typeName)
        let candidates = try await connection.query(sql, [target.table.oid, target.rule.column, cutoff])
            .map { try $0.decode("quoted", as: String.self) }
        var partitions = 0, rows = 0
        let milliseconds = lockTimeout.components.seconds * 1000 + lockTimeout.components.attoseconds / 1_000_000_000_000_000
        for partition in candidates {
            if !dryRun {
                do {
                    // One short transaction: the count is exactly the rows the drop removes.
                    let dropped = try await connection.withSession { session in
                        try session.execute("BEGIN")
                        do {
                            try session.execute("SET LOCAL lock_timeout = \(max(1, milliseconds))")
                            let rows: Int = try session.query("SELECT count(*) AS n FROM \(partition)").first?.decode("n") ?? 0
                            try session.execute("DROP TABLE \(partition)")
                            try session.execute("COMMIT")
                            return rows
                        } catch {
                            _ = try? session.execute("ROLLBACK")
                            throw error
                        }
                    }
                    rows += dropped
                    partitions += 1
                } catch let error as PostgresError where error.sqlState == "55P03" || error.sqlState == "42P01" {
                    continue
                }
            } else {
                // Every row of the partition is before the cutoff: the leaves' counts include them.
                partitions += 1
            }
        }
        return (partitions, rows)
    }

    /// Runs `body`; a partition or chunk dropped since the leaves were listed (SQLSTATE 42P01)
    /// has no rows left to delete or count, so it yields nil instead of failing the run.
    static func ignoringDroppedLeaf<T>(_ body: () async throws -> T) async throws -> T? {
        do {
            return try await body()
        } catch let error as PostgresError where error.sqlState == "42P01" {
            return nil
        }
    }

    /// Runs `sql` (a batch delete: $1 cutoff, $2 limit, optional $3 filter values) until a
    /// batch deletes fewer than `batchSize` rows. Each statement is its own transaction. A batch
    /// that runs out of `statement_timeout` (blocked by a lock, or too large for it) fails with
    /// an error naming the table; one cancelled because the job was cancelled throws `JobCancelled`.
    /// Public for the retention benchmark, which times it against one unbatched DELETE.
    public static func deleteInBatches(
        connection: PostgresConnection, sql: String, leaf: String, table: String, cutoff: String, filterValues: [String]?,
        batchSize: Int, pause: Duration, timeouts: TaskTimeouts, checkCancellation: @Sendable () throws -> Void,
        afterBatch: @Sendable (_ rows: Int, _ batches: Int) async throws -> Void
    ) async throws -> (rows: Int, batches: Int) {
        var rows = 0, batches = 0
        var params: [any PostgresBindable] = [cutoff, batchSize]
        if let filterValues { params.append(filterValues) }
        while true {
            try checkCancellation()
            let deleted: Int
            do {
                deleted = try await connection.query(sql, params).affectedRows ?? 0
            } catch let error as PostgresError where error.sqlState == "57014" {
                try checkCancellation()
                throw MaintenanceError.database(
                    operation: "retention: deleting a batch of up to \(batchSize) rows from \(table) (\(leaf)) ran out of "
                        + "worker.statement_timeout_seconds = \(timeouts.shortStatementSeconds) (blocked by a lock held by another "
                        + "transaction, or a batch too slow: lower retention.batch_size)",
                    error: error)
            }
            rows += deleted
            batches += 1
            try await afterBatch(rows, batches)
            if deleted < batchSize { break }
            if pause > .zero { try await Task.sleep(for: pause) }
        }
        return (rows, batches)
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}
