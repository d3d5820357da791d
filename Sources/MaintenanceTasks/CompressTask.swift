import Foundation
import JobQueue
import PostgresClient

/// Settings of the `compress` task.
public struct CompressSettings: Sendable, Equatable {
    /// Chunks whose range ended more than this many days ago are compressed (default 7).
    public var olderThanDays: Int
    /// The column compressed data is segmented by, when a hypertable has it (default `symbol`).
    public var segmentBy: String

    /// Creates settings; every argument has the documented default.
    public init(olderThanDays: Int = 7, segmentBy: String = "symbol") {
        self.olderThanDays = olderThanDays
        self.segmentBy = segmentBy
    }

    /// Checks ranges and names.
    public func validate() throws {
        guard (0...100_000).contains(olderThanDays) else {
            throw MaintenanceError.invalidSetting(key: "compress.older_than_days", reason: "must be 0...100000, got \(olderThanDays)")
        }
        guard Catalog.isPlainName(segmentBy, allowSchema: false) else {
            throw MaintenanceError.invalidSetting(key: "compress.segment_by", reason: "\"\(segmentBy)\" is not a plain column name")
        }
    }
}

/// What `compress` did to one hypertable.
public struct CompressTableReport: Sendable, Codable, Equatable {
    /// `schema.table`.
    public var table: String
    /// True when this run turned compression on.
    public var compressionEnabled: Bool
    /// Chunks compressed by this run.
    public var chunksCompressed: Int
    /// `hypertable_size` before and after.
    public var bytesBefore: Int64
    /// `hypertable_size` after.
    public var bytesAfter: Int64

    enum CodingKeys: String, CodingKey {
        case table
        case compressionEnabled = "compression_enabled"
        case chunksCompressed = "chunks_compressed"
        case bytesBefore = "bytes_before"
        case bytesAfter = "bytes_after"
    }
}

/// The `compress` task's result.
public struct CompressReport: Sendable, Codable, Equatable {
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

    enum CodingKeys: String, CodingKey {
        case skipped, reason, tables
        case timescaledbVersion = "timescaledb_version"
        case olderThanDays = "older_than_days"
    }
}

/// The `compress` task: on TimescaleDB, enables compression (segmented by symbol, ordered by
/// the time column, newest first) on hypertables lacking it and compresses chunks older than
/// N days, one chunk per statement (so one per transaction). On plain PostgreSQL it succeeds
/// with `{"skipped": true, "reason": "timescaledb extension not installed"}`.
///
/// Args: `older_than_days`.
public struct CompressTask: JobTask {
    /// `compress`.
    public let name = "compress"
    /// Threshold and segmentation.
    public let settings: CompressSettings

    /// Creates the task.
    public init(settings: CompressSettings = CompressSettings()) {
        self.settings = settings
    }

    struct Args: Decodable {
        var olderThanDays: Int?
        enum CodingKeys: String, CodingKey { case olderThanDays = "older_than_days" }
    }

    public func run(_ context: JobContext) async throws -> JobResult {
        let args = try context.decodeArgs(Args.self, allowedKeys: ["older_than_days"])
        var effective = settings
        if let days = args.olderThanDays { effective.olderThanDays = days }
        try effective.validate()
        let connection = try await context.connect()
        do {
            let report = try await Self.execute(
                settings: effective, connection: connection, checkCancellation: { try context.checkCancellation() })
            await connection.close()
            return try JobResult(report)
        } catch {
            await connection.close()
            throw error
        }
    }

    static func execute(
        settings: CompressSettings, connection: PostgresConnection, checkCancellation: @escaping @Sendable () throws -> Void
    ) async throws -> CompressReport {
        guard let version = try await connection.withSession({ try Catalog.timescaleVersion(session: $0) }) else {
            return CompressReport(skipped: true, reason: "timescaledb extension not installed")
        }
        let license: String = try await connection.query(TimescaleSQL.license).first?.decodeIfPresent("timescaledb.license") ?? ""
        if license == "apache" {
            return CompressReport(
                skipped: true, reason: "timescaledb is the Apache-2 licensed build (timescaledb.license = apache); compression needs the community license",
                timescaledbVersion: version)
        }
        var reports: [CompressTableReport] = []
        let hypertables = try await connection.query(TimescaleSQL.hypertables)
        for row in hypertables {
            try checkCancellation()
            let schema: String = try row.decode("schema"), table: String = try row.decode("name")
            let quoted: String = try row.decode("quoted")
            let enabled: Bool = try row.decode("compression_enabled")
            var report = CompressTableReport(table: "\(schema).\(table)", compressionEnabled: false, chunksCompressed: 0, bytesBefore: 0, bytesAfter: 0)
            report.bytesBefore = try await connection.query(TimescaleSQL.hypertableSize, [quoted]).first?.decodeIfPresent("bytes") ?? 0
            if !enabled {
                let statement = try await connection.withSession { session -> String? in
                    guard let resolved = try Catalog.table(schema: schema, name: table, session: session),
                          let time: String = try session.query(TimescaleSQL.timeDimension, [schema, table]).first?.decodeIfPresent("column_name"),
                          let timeColumn = try Catalog.column(time, of: resolved, session: session)
                    else { return nil }
                    let segment = try Catalog.column(settings.segmentBy, of: resolved, session: session)
                    return TimescaleSQL.enableCompression(table: resolved.quoted, segmentBy: segment?.quoted, orderBy: timeColumn.quoted)
                }
                guard let statement else { continue }
                try await connection.execute(statement)
                report.compressionEnabled = true
            }
            let chunks = try await connection.query(TimescaleSQL.uncompressedChunksOlderThan, [quoted, settings.olderThanDays])
            for chunk in chunks {
                try checkCancellation()
                try await connection.execute(TimescaleSQL.compressStatement(chunk: try chunk.decode("chunk"), version: version))
                report.chunksCompressed += 1
            }
            report.bytesAfter = try await connection.query(TimescaleSQL.hypertableSize, [quoted]).first?.decodeIfPresent("bytes") ?? 0
            reports.append(report)
        }
        return CompressReport(skipped: false, timescaledbVersion: version, olderThanDays: settings.olderThanDays, tables: reports)
    }
}
