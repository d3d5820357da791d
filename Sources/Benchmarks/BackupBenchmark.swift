import Backup
import ChildProcess
import Foundation
import Toolkit
import PostgresClient

/// Figures of one backup benchmark run (sizes in bytes, speeds in MB/s of database size,
/// 1 MB = 1,000,000 bytes).
public struct BackupBenchmarkReport: Sendable, Codable, CustomStringConvertible {
    /// The database measured.
    public let database: String
    /// `pg_database_size` before the run.
    public let databaseBytes: Int64
    /// The full backup (pg_dump | compressor, verify, rename), in seconds.
    public let backupSeconds: Double
    /// Database size divided by backup time.
    public let backupMBPerSecond: Double
    /// Of the backup: pg_dump piped into the compressor.
    public let dumpAndCompressSeconds: Double
    /// Of the backup: the verification (decompressing the file once).
    public let verifySeconds: Double
    /// `pg_dump > /dev/null` alone, in seconds, measured in the same run.
    public let dumpOnlySeconds: Double
    /// The bare pipeline `pg_dump | compressor -c -LEVEL > file` (no verification, no rename),
    /// in seconds, measured in the same run: the bound a backup is compared with.
    public let barePipelineSeconds: Double
    /// `backupSeconds / barePipelineSeconds` (the target is 1.10 or less).
    public var ratioToBarePipeline: Double { backupSeconds / max(barePipelineSeconds, 1e-9) }
    /// Database size divided by the dump-only time.
    public let dumpOnlyMBPerSecond: Double
    /// The size of the backup file.
    public let fileBytes: Int64
    /// The size of the SQL text inside the file.
    public let dumpBytes: Int64
    /// SQL size divided by file size.
    public let compressionRatio: Double
    /// The compressor used.
    public let compressor: String
    /// Its compression level.
    public let compressionLevel: Int

    public var description: String {
        func mb(_ bytes: Int64) -> String { String(format: "%.1f MB", Double(bytes) / 1_000_000) }
        return """
            database        \(database), \(mb(databaseBytes))
            backup          \(String(format: "%.2f s, %.1f MB/s", backupSeconds, backupMBPerSecond)) (\(compressor) -\(compressionLevel), verify included)
              of which      \(String(format: "%.2f s pg_dump | compressor, %.2f s verify", dumpAndCompressSeconds, verifySeconds))
            pg_dump only    \(String(format: "%.2f s, %.1f MB/s", dumpOnlySeconds, dumpOnlyMBPerSecond)) (to /dev/null)
            bare pipeline   \(String(format: "%.2f s", barePipelineSeconds)) (pg_dump | \(compressor) -\(compressionLevel) > file)
            ratio           \(String(format: "%.2f", ratioToBarePipeline)) (backup ÷ bare pipeline; best of each)
            file            \(mb(fileBytes)) from \(mb(dumpBytes)) of SQL, ratio \(String(format: "%.2f", compressionRatio))
            """
    }
}

/// Measures a backup against pg_dump alone, for `closebell bench backup`.
public enum BackupBenchmark {
    /// Backs up `conninfo`'s database into `directory` (the file is deleted afterwards), then
    /// times `pg_dump > /dev/null` with the same program and environment.
    public static func run(conninfo: String?, directory: URL, settings: BackupSettings? = nil) async throws -> BackupBenchmarkReport {
        var settings = settings ?? BackupSettings(directory: directory)
        settings.directory = directory
        settings.keep = Int.max / 2
        let info = try ConnectionInfo(parsing: conninfo)
        let connection = try await PostgresConnection.connect(conninfo, applicationName: "closebell bench backup")
        let size = try await connection.query("SELECT pg_database_size(current_database()) AS size").first?.decode("size", as: Int64.self) ?? 0
        let database = connection.databaseName
        let version = connection.serverVersion
        await connection.close()

        // Each measured twice, interleaved, the best kept: the first runs also warm the caches.
        var result = try await BackupRunner(settings: settings).run(conninfo: conninfo, label: "benchmark")
        unlink(result.path)

        let passfile = try PasswordFile(password: info.password, database: database)
        defer { passfile?.remove() }
        let pgDump = settings.pgDumpPath ?? PostgresPrograms.path(of: "pg_dump", serverVersion: version)
        let command = BackupRunner.pgDumpCommand(executable: pgDump, info: info, database: database, passfile: passfile?.path, settings: settings)
        let secrets = Redactor.forms(ofPassword: info.password)
        let compress = ChildCommand(executable: settings.resolvedCompressor, arguments: ["-c", "-\(settings.compressionLevel)"],
                                    environment: ProcessInfo.processInfo.environment)
        let barePath = directory.appendingPathComponent("closebell-bench-bare-\(getpid()).sql.gz").path
        var bareSeconds = Double.infinity
        for round in 0..<2 {
            let fd = open(barePath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw BackupError(stage: .dump, message: "cannot create the file", path: barePath, database: database, errno: errno, secrets: secrets) }
            let bareStarted = Date()
            let bare = try await Pipeline.run([command, compress], stdout: fd, timeout: settings.dumpTimeout, killGrace: settings.killGrace)
            close(fd)
            bareSeconds = min(bareSeconds, Date().timeIntervalSince(bareStarted))
            unlink(barePath)
            for child in bare.children where !child.status.succeeded {
                throw BackupError(stage: .dump, message: "pg_dump | compressor > file failed", database: database, program: child.name,
                                  exitStatus: child.status, stderrTail: child.stderrTail, secrets: secrets)
            }
            if round == 0 {
                let again = try await BackupRunner(settings: settings).run(conninfo: conninfo, label: "benchmark")
                unlink(again.path)
                if again.seconds < result.seconds { result = again }
            }
        }
        let started = Date()
        let outcome = try await Pipeline.run([command], timeout: settings.dumpTimeout, killGrace: settings.killGrace)
        let dumpSeconds = Date().timeIntervalSince(started)
        guard outcome.children[0].status.succeeded else {
            let child = outcome.children[0]
            throw BackupError(stage: .dump, message: "pg_dump > /dev/null failed", database: database, program: child.name, exitStatus: child.status, stderrTail: child.stderrTail, secrets: secrets)
        }
        let megabytes = Double(size) / 1_000_000
        return BackupBenchmarkReport(
            database: database, databaseBytes: size, backupSeconds: result.seconds,
            backupMBPerSecond: megabytes / max(result.seconds, 1e-9),
            dumpAndCompressSeconds: result.dumpSeconds, verifySeconds: result.verifySeconds, dumpOnlySeconds: dumpSeconds, barePipelineSeconds: bareSeconds,
            dumpOnlyMBPerSecond: megabytes / max(dumpSeconds, 1e-9), fileBytes: result.bytes, dumpBytes: result.dumpBytes,
            compressionRatio: Double(result.dumpBytes) / Double(max(result.bytes, 1)), compressor: result.compressor,
            compressionLevel: settings.compressionLevel)
    }
}
