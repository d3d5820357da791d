import Foundation
import JobQueue
import PostgresClient
import Toolkit

/// Settings of the `compress` task.
public struct CompressSettings: Sendable, Equatable {
    /// Chunks whose range ended more than this many days ago are compressed (default 7).
    public var olderThanDays: Int
    /// The column compressed data is segmented by, when a hypertable has it (default `symbol`).
    public var segmentBy: String
    /// `lock_timeout` of the compression statements, in milliseconds (default 5000; 0 waits
    /// forever). Turning compression on needs an ACCESS EXCLUSIVE lock on the hypertable and
    /// compressing a chunk an EXCLUSIVE lock on it: a statement waiting behind a long
    /// transaction would queue every later reader of the table behind itself, so it gives up
    /// instead and the job fails naming the table or chunk (the queue retries it later).
    public var lockTimeoutMilliseconds: Int
    /// The hypertables compressed (default `market_data_daily`, `volume_slots`). Other
    /// hypertables in the database are left alone; a listed table that does not exist or is
    /// not a hypertable is reported in `skipped_tables`.
    public var tables: [String]

    /// The market-data hypertables.
    public static let defaultTables = ["market_data_daily", "volume_slots"]

    /// Creates settings; every argument has the documented default.
    public init(
        olderThanDays: Int = 7, segmentBy: String = "symbol", lockTimeoutMilliseconds: Int = 5000,
        tables: [String] = CompressSettings.defaultTables
    ) {
        self.olderThanDays = olderThanDays
        self.segmentBy = segmentBy
        self.lockTimeoutMilliseconds = lockTimeoutMilliseconds
        self.tables = tables
    }

    /// Checks ranges and names.
    public func validate() throws {
        for table in tables where !Catalog.isPlainName(table) { throw MaintenanceError.invalidTableName(table) }
        guard (0...100_000).contains(olderThanDays) else {
            throw MaintenanceError.invalidSetting(key: "compress.older_than_days", reason: "must be 0...100000, got \(olderThanDays)")
        }
        guard Catalog.isPlainName(segmentBy, allowSchema: false) else {
            throw MaintenanceError.invalidSetting(key: "compress.segment_by", reason: "\"\(segmentBy)\" is not a plain column name")
        }
        guard (0...86_400_000).contains(lockTimeoutMilliseconds) else {
            throw MaintenanceError.invalidSetting(
                key: "compress.lock_timeout_ms", reason: "must be 0...86400000 (0 waits forever), got \(lockTimeoutMilliseconds)")
        }
    }
}

extension CompressSettings: Decodable {
    /// The keys of the config file's `compress:` section.
    enum CodingKeys: String, CodingKey {
        case olderThanDays = "older_than_days", segmentBy = "segment_by", lockTimeoutMilliseconds = "lock_timeout_ms", tables
    }

    /// Reads the `compress:` section: absent keys keep their defaults; then the whole is checked
    /// (`validate`), a refusal naming the key.
    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        olderThanDays = try c.setting(.olderThanDays, olderThanDays, min: 0)
        segmentBy = try c.setting(.segmentBy, segmentBy)
        lockTimeoutMilliseconds = try c.setting(.lockTimeoutMilliseconds, lockTimeoutMilliseconds, min: 0)
        tables = try c.setting(.tables, default: tables)
        do {
            try validate()
        } catch let error as MaintenanceError {
            throw error.settingError(at: c.codingPath, section: "compress")
        }
    }
}

/// What `compress` did to one hypertable.
public struct CompressTableReport: Sendable, Codable, Equatable {
    /// `schema.table`.
    public var table: String
    /// True when this run turned compression on.
    public var compressionEnabled: Bool
    /// Chunks compressed by this run (recompressed ones included).
    public var chunksCompressed: Int
    /// Of those, chunks that were compressed already and had rows written since (TimescaleDB
    /// keeps such rows uncompressed until the chunk is compressed again).
    public var chunksRecompressed: Int
    /// `hypertable_size` (chunks, compressed data and indexes) before this run.
    public var bytesBefore: Int64
    /// `hypertable_size` after.
    public var bytesAfter: Int64

    enum CodingKeys: String, CodingKey {
        case table
        case compressionEnabled = "compression_enabled"
        case chunksCompressed = "chunks_compressed"
        case chunksRecompressed = "chunks_recompressed"
        case bytesBefore = "bytes_before"
        case bytesAfter = "bytes_after"
    }
}

/// The `compress` task's result.
public struct CompressReport: TaskResult, Equatable {
    /// True when nothing was attempted (plain PostgreSQL, or the Apache-licensed build).
    public var skipped: Bool
    /// Why it was skipped.
    public var reason: String?
    /// The TimescaleDB version, when installed.
    public var timescaledbVersion: String?
    /// The age threshold used.
    public var olderThanDays: Int?
    /// One entry per hypertable.
    public var tables: [CompressTableReport]?
    /// Chunks compressed across all hypertables.
    public var chunksCompressed: Int?
    /// The hypertables' total size before this run.
    public var bytesBefore: Int64?
    /// Their total size after.
    public var bytesAfter: Int64?
    /// Configured tables that do not exist or are not hypertables.
    public var skippedTables: [SkippedTable]?

    /// A report of a run that did nothing, and why.
    static func skipped(_ reason: String, version: String? = nil) -> CompressReport {
        CompressReport(skipped: true, reason: reason, timescaledbVersion: version)
    }

    enum CodingKeys: String, CodingKey {
        case skipped, reason, tables
        case timescaledbVersion = "timescaledb_version"
        case olderThanDays = "older_than_days"
        case chunksCompressed = "chunks_compressed"
        case bytesBefore = "bytes_before"
        case bytesAfter = "bytes_after"
        case skippedTables = "skipped_tables"
    }
}

/// The `compress` task: on TimescaleDB, enables compression (segmented by symbol, ordered by
/// the time column, newest first, then the rest of the primary key) on the configured
/// hypertables lacking it and compresses their chunks older than N days, one chunk per
/// statement (so one per transaction): chunks never compressed, and compressed ones that had
/// rows written since. Every statement runs under `compress.lock_timeout_ms`; catalog and size
/// queries also under the worker's short statement timeout, compression statements under none
/// (the job's time limit bounds them). On plain
/// PostgreSQL or the Apache-licensed build it succeeds with `{"skipped": true, "reason": …}`.
///
/// Args: `older_than_days`.
public struct CompressTask: JobTask {
    /// `compress`: its arguments and summary (the `maintenance_task_types` row).
    public static let declaration = TaskDeclaration(
        name: "compress", arguments: ["older_than_days": .integer],
        summary: "TimescaleDB: compress chunks older than N days (skipped on plain PostgreSQL).")
    /// Threshold, segmentation and lock timeout.
    public let settings: CompressSettings

    /// Creates the task.
    public init(settings: CompressSettings = CompressSettings()) {
        self.settings = settings
    }

    struct Args: Decodable {
        var olderThanDays: Int?
        enum CodingKeys: String, CodingKey { case olderThanDays = "older_than_days" }
    }

    public func run(_ context: JobContext) async throws -> CompressReport {
        let args = try arguments(Args.self, of: context)
        var effective = settings
        if let days = args.olderThanDays { effective.olderThanDays = days }
        try effective.validate()
        let connection = try await context.connect()
        do {
            let report = try await Self.execute(
                settings: effective, connection: connection, timeouts: context.timeouts,
                checkCancellation: { try context.checkCancellation() })
            await connection.close()
            context.logger.info("compress_finished", metadata: [
                "chunks_compressed": "\(report.chunksCompressed ?? 0)", "skipped": "\(report.skipped)",
            ])
            return report
        } catch {
            await connection.close()
            throw error
        }
    }

    /// Compresses under the task's limits and leaves the session's `lock_timeout` and
    /// `statement_timeout` reset afterwards, also when compression failed or was cancelled.
    static func execute(
        settings: CompressSettings, connection: PostgresConnection, timeouts: TaskTimeouts = TaskTimeouts(),
        checkCancellation: @escaping @Sendable () throws -> Void
    ) async throws -> CompressReport {
        let report: CompressReport
        do {
            report = try await compress(settings: settings, connection: connection, timeouts: timeouts, checkCancellation: checkCancellation)
        } catch {
            // The error is what the user needs; a reset that fails too (the connection is
            // gone) changes nothing, since the session's settings went with it.
            try? await resetTimeouts(connection)
            throw error
        }
        try await resetTimeouts(connection)
        return report
    }

    /// `RESET lock_timeout` and `RESET statement_timeout`.
    static func resetTimeouts(_ connection: PostgresConnection) async throws {
        try await connection.execute("RESET lock_timeout")
        try await connection.execute("RESET statement_timeout")
    }

    private static func compress(
        settings: CompressSettings, connection: PostgresConnection, timeouts: TaskTimeouts,
        checkCancellation: @escaping @Sendable () throws -> Void
    ) async throws -> CompressReport {
        // Catalog and size queries have a natural bound.
        try await connection.execute(timeouts.setShortStatementTimeout)
        guard let version = try await connection.withSession({ try Catalog.timescaleVersion(session: $0) }) else {
            return .skipped("timescaledb extension not installed")
        }
        let license: String = try await connection.query(TimescaleSQL.license).first?.decodeIfPresent("timescaledb.license") ?? ""
        if license == "apache" {
            return .skipped(
                "timescaledb is the Apache-2 licensed build (timescaledb.license = apache); compression needs the community license",
                version: version)
        }
        try await connection.execute("SET lock_timeout = \(settings.lockTimeoutMilliseconds)")
        let (targets, skippedTables) = try await connection.withSession { session in
            try Self.targets(settings: settings, session: session)
        }
        var reports: [CompressTableReport] = []
        for target in targets {
            try checkCancellation()
            let quoted = target.table.quoted
            var report = CompressTableReport(
                table: target.table.qualified, compressionEnabled: false, chunksCompressed: 0, chunksRecompressed: 0,
                bytesBefore: 0, bytesAfter: 0)
            report.bytesBefore = try await connection.query(TimescaleSQL.hypertableSize, [quoted]).first?.decodeIfPresent("bytes") ?? 0
            if let statement = target.enableStatement {
                try await run(statement, operation: "compress: enabling compression on \(report.table)", settings: settings, timeouts: timeouts,
                              connection: connection)
                report.compressionEnabled = true
            }
            let chunks = try await connection.query(TimescaleSQL.chunksToCompress, [quoted, settings.olderThanDays])
            for chunk in chunks {
                try checkCancellation()
                let name: String = try chunk.decode("chunk")
                try await run(
                    TimescaleSQL.compressStatement(chunk: name, version: version),
                    operation: "compress: compressing chunk \(name) of \(report.table)", settings: settings, timeouts: timeouts,
                    connection: connection)
                report.chunksCompressed += 1
                if try chunk.decode("compressed", as: Bool.self) { report.chunksRecompressed += 1 }
            }
            report.bytesAfter = try await connection.query(TimescaleSQL.hypertableSize, [quoted]).first?.decodeIfPresent("bytes") ?? 0
            reports.append(report)
        }
        return CompressReport(
            skipped: false, timescaledbVersion: version, olderThanDays: settings.olderThanDays, tables: reports,
            chunksCompressed: reports.reduce(0) { $0 + $1.chunksCompressed },
            bytesBefore: reports.reduce(0) { $0 + $1.bytesBefore }, bytesAfter: reports.reduce(0) { $0 + $1.bytesAfter },
            skippedTables: skippedTables)
    }

    /// A configured hypertable, with the statement turning compression on when it is off.
    struct Target: Sendable {
        let table: ResolvedTable
        let enableStatement: String?
    }

    /// Resolves the configured tables: hypertables become targets, the rest are skipped.
    static func targets(settings: CompressSettings, session: PostgresSession) throws -> ([Target], [SkippedTable]) {
        var targets: [Target] = []
        var skipped: [SkippedTable] = []
        for name in settings.tables {
            guard let table = try Catalog.table(name, session: session) else {
                skipped.append(SkippedTable(table: name, reason: "table does not exist"))
                continue
            }
            if targets.contains(where: { $0.table == table }) { continue }
            guard let state = try session.query(TimescaleSQL.compressionEnabled, [table.schema, table.name]).first,
                  let time: String = try session.query(TimescaleSQL.timeDimension, [table.schema, table.name]).first?.decodeIfPresent("column_name"),
                  let timeColumn = try Catalog.column(time, of: table, session: session)
            else {
                skipped.append(SkippedTable(table: name, reason: "not a hypertable"))
                continue
            }
            var statement: String?
            if try !state.decode("compression_enabled", as: Bool.self) {
                let segment = try Catalog.column(settings.segmentBy, of: table, session: session)
                let key: [String] = try session.query(TimescaleSQL.primaryKeyColumns, [table.oid]).map { try $0.decode("quoted") }
                statement = TimescaleSQL.enableCompression(
                    table: table.quoted, segmentBy: segment?.quoted, orderBy: timeColumn.quoted,
                    thenBy: key.filter { $0 != segment?.quoted && $0 != timeColumn.quoted })
            }
            targets.append(Target(table: table, enableStatement: statement))
        }
        return (targets, skipped)
    }

    /// Runs one compression statement; a server error comes back naming what was being done
    /// (and, for a lock wait that ran out, the setting that bounds it).
    /// The statement runs without a statement timeout; the short one is restored after it.
    static func run(
        _ statement: String, operation: String, settings: CompressSettings, timeouts: TaskTimeouts, connection: PostgresConnection
    ) async throws {
        do {
            try await connection.execute("SET statement_timeout = 0")
            try await connection.execute(statement)
            try await connection.execute(timeouts.setShortStatementTimeout)
        } catch let error as PostgresError where error.sqlState == "55P03" {
            throw MaintenanceError.database(
                operation: "\(operation): gave up waiting for a lock after compress.lock_timeout_ms = \(settings.lockTimeoutMilliseconds)",
                error: error)
        } catch let error as PostgresError where error.kind == .server {
            throw MaintenanceError.database(operation: operation, error: error)
        }
    }
}
