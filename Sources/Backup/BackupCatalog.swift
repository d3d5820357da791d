import ChildProcess
import Foundation
import PostgresClient

#if canImport(Glibc)
import Glibc
#endif

/// What a restore did.
public struct RestoreResult: Sendable, Codable, Equatable {
    /// The backup file restored.
    public let path: String
    /// The database restored into.
    public let database: String
    /// True when the database did not exist and was created.
    public let created: Bool
    /// True when a non-empty database was dropped and recreated (`force`).
    public let replaced: Bool
    /// Seconds the restore took.
    public let seconds: Double
}

/// The backups in a folder: listing, verification and restore.
public struct BackupCatalog: Sendable {
    /// The settings (folder, programs, timeouts) used.
    public let settings: BackupSettings
    /// The database restore connects to for CREATE/DROP DATABASE. Default `postgres`.
    public let maintenanceDatabase: String

    /// Creates a catalog of `settings.directory`.
    public init(settings: BackupSettings, maintenanceDatabase: String = "postgres") {
        self.settings = settings
        self.maintenanceDatabase = maintenanceDatabase
    }

    /// The backups of every database in the folder (names `{db}_{YYYYMMDD_HHMMSS}.sql.gz`),
    /// newest first. A missing folder has none.
    public func list() throws -> [BackupFile] {
        guard FileManager.default.fileExists(atPath: settings.directory.path) else { return [] }
        do {
            return try BackupNaming.list(directory: settings.directory)
        } catch {
            throw BackupError(stage: .prepare, message: "cannot list the backup folder: \(error.localizedDescription)", path: settings.directory.path)
        }
    }

    /// Checks that `path` is a complete gzip-compressed dump (see `BackupVerifier`).
    public func verify(path: String) async throws -> BackupVerification {
        try await BackupVerifier(settings: settings).verify(path: path)
    }

    /// Restores the backup at `path` into the database `database` of the server `conninfo`
    /// names, with `gzip -dc FILE | psql -X -v ON_ERROR_STOP=1 -q --single-transaction`
    /// (a failed restore leaves the database as it was).
    ///
    /// A missing database is created (from template0) and dropped again if the restore fails.
    /// An existing database without user tables is restored into. One with user tables
    /// (tables, views, sequences, ... outside the system schemas) is refused with
    /// `.targetNotEmpty`, unless `force`: then it is dropped (its sessions disconnected) and
    /// recreated from template0 before the restore.
    public func restore(path: String, into database: String, conninfo: String?, force: Bool = false) async throws -> RestoreResult {
        let started = Date()
        try settings.validate()
        let info: ConnectionInfo
        do {
            info = try ConnectionInfo(parsing: conninfo)
        } catch let error as ConnectionInfoError {
            throw BackupError(stage: .configuration, message: error.description)
        }
        let secrets = Scrubber.secrets(forPassword: info.password)
        guard !database.isEmpty else { throw BackupError(stage: .configuration, message: "the target database name is empty") }
        guard access(path, R_OK) == 0 else {
            let code = errno
            throw BackupError(stage: .restore, message: "cannot read the backup: \(String(cString: strerror(code)))", path: path, errno: code)
        }

        let admin: PostgresConnection
        do {
            admin = try await PostgresConnection.connect(
                info.conninfoString(overriding: ["dbname": maintenanceDatabase]), applicationName: "closebell restore")
        } catch {
            throw BackupError(stage: .connect, message: "cannot connect: \(error)", database: maintenanceDatabase, secrets: secrets)
        }
        let quoted = PostgresSession.quoteIdentifier(database)
        var created = false
        var replaced = false
        do {
            let exists = !(try await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database])).isEmpty
            if exists {
                let relations = try await countUserRelations(info: info, database: database)
                if relations > 0 {
                    guard force else {
                        await admin.close()
                        throw BackupError(
                            stage: .targetNotEmpty,
                            message: "database \(database) has \(relations) user table(s) or other relations; use --force (the force option) to drop and recreate it",
                            path: path, database: database)
                    }
                    try await admin.execute("DROP DATABASE \(quoted) WITH (FORCE)")
                    try await admin.execute("CREATE DATABASE \(quoted) TEMPLATE template0")
                    replaced = true
                }
            } else {
                try await admin.execute("CREATE DATABASE \(quoted) TEMPLATE template0")
                created = true
            }
        } catch let error as PostgresError {
            await admin.close()
            throw BackupError(stage: .restore, message: "preparing the target failed: \(error)", path: path, database: database, secrets: secrets)
        }

        let serverVersion = admin.serverVersion
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        defer { if fd >= 0 { close(fd) } }
        let passfile = try PasswordFile(password: info.password, database: database)
        defer { passfile?.remove() }
        let environment = BackupRunner.childEnvironment(
            info: info, database: database, passfile: passfile?.path, connectTimeout: settings.connectTimeout)
        let psql = settings.psqlPath ?? PostgresPrograms.path(of: "psql", serverVersion: serverVersion)
        let commands = [
            ChildCommand(executable: settings.gzipPath, arguments: ["-dc"], environment: ChildEnvironment.base()),
            ChildCommand(executable: psql, arguments: ["-X", "-v", "ON_ERROR_STOP=1", "-q", "--single-transaction"], environment: environment),
        ]
        var failure: BackupError?
        do {
            let outcome = try await Pipeline.run(commands, stdin: fd, timeout: settings.verifyTimeout, killGrace: settings.killGrace)
            let (gzip, restore) = (outcome.children[0], outcome.children[1])
            if outcome.timedOut || outcome.cancelled {
                failure = BackupError(
                    stage: outcome.timedOut ? .timeout : .cancelled, message: "restore stopped", path: path, database: database,
                    program: restore.name, exitStatus: restore.status, stderrTail: restore.stderrTail, secrets: secrets)
            } else if !gzip.status.succeeded {
                failure = BackupError(
                    stage: .restore, message: "the backup could not be decompressed (truncated or corrupted)", path: path,
                    database: database, program: gzip.name, exitStatus: gzip.status, stderrTail: gzip.stderrTail, secrets: secrets)
            } else if !restore.status.succeeded {
                failure = BackupError(
                    stage: .restore, message: "psql failed (\(restore.status))", path: path, database: database,
                    program: restore.name, exitStatus: restore.status, stderrTail: restore.stderrTail, secrets: secrets)
            }
        } catch let spawn as SpawnFailure {
            failure = BackupError(stage: .restore, message: spawn.message, path: path, database: database, program: spawn.program, errno: spawn.errno)
        }
        if let failure {
            if created { _ = try? await admin.execute("DROP DATABASE IF EXISTS \(quoted) WITH (FORCE)") }
            await admin.close()
            throw failure
        }
        await admin.close()
        return RestoreResult(path: path, database: database, created: created, replaced: replaced, seconds: Date().timeIntervalSince(started))
    }

    /// Relations (tables, views, sequences, ...) outside the system schemas of `database`.
    private func countUserRelations(info: ConnectionInfo, database: String) async throws -> Int {
        let connection = try await PostgresConnection.connect(
            info.conninfoString(overriding: ["dbname": database]), applicationName: "closebell restore")
        let rows: PostgresRows
        do {
            rows = try await connection.query("""
            SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
            """)
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
        return try rows.first?.decode("n", as: Int.self) ?? 0
    }
}
