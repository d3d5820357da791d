import ChildProcess
import Foundation
import Toolkit
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
    /// True when an existing database was replaced by the restored one.
    public let replaced: Bool
    /// Seconds the restore took.
    public let seconds: Double
    /// Things the user should know that did not make the restore fail (an old copy that could
    /// not be dropped after the swap).
    public let warnings: [String]
}

/// The steps of a restore, named in its errors.
enum RestoreStep: CustomStringConvertible {
    case verify, connect, inspect, create(String), timescalePre(String), load(String), timescalePost(String)
    case disconnect(String), renameAside(String, String), renameIn(String, String)

    var description: String {
        switch self {
        case .verify: return "verify the backup file"
        case .connect: return "connect to the server"
        case .inspect: return "inspect the target database"
        case .create(let name): return "create the temporary database \(name)"
        case .timescalePre(let name): return "prepare TimescaleDB (timescaledb_pre_restore) in \(name)"
        case .load(let name): return "load the file into the temporary database \(name)"
        case .timescalePost(let name): return "finish TimescaleDB (timescaledb_post_restore) in \(name)"
        case .disconnect(let name): return "disconnect the sessions of \(name)"
        case .renameAside(let from, let to): return "rename \(from) aside to \(to)"
        case .renameIn(let from, let to): return "rename \(from) to \(to)"
        }
    }
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
    /// names, all or nothing: the target is exactly as it was unless the whole restore succeeded.
    ///
    /// 1. The whole file is verified (gzip integrity and pg_dump's completion line).
    /// 2. A target with user tables (tables, views, sequences, ... outside the system schemas)
    ///    is refused with `.targetNotEmpty` unless `force`.
    /// 3. The file is loaded into a new database with a temporary name (from template0) with
    ///    `gzip -dc FILE | psql -X -v ON_ERROR_STOP=1 -q --single-transaction`. When the server
    ///    has TimescaleDB and the dump creates the extension, the new database gets
    ///    `timescaledb_pre_restore()` before and `timescaledb_post_restore()` after the load,
    ///    as TimescaleDB documents.
    /// 4. Only then the swap: connections to the target are refused and its sessions
    ///    disconnected, the target is renamed aside, the new database renamed in, the old one
    ///    dropped.
    ///
    /// A failure at any step drops the temporary database, undoes the steps of the swap done so
    /// far, and throws an error whose message names the step. The restored database is a new
    /// one: owner, grants and `ALTER DATABASE ... SET` settings of the old one are not carried
    /// over (as with the drop-and-recreate of earlier versions).
    public func restore(path: String, into database: String, conninfo: String?, force: Bool = false) async throws -> RestoreResult {
        let started = Date()
        try settings.validate()
        let info: ConnectionInfo
        do {
            info = try ConnectionInfo(parsing: conninfo)
        } catch let error as ConnectionInfoError {
            throw BackupError(stage: .configuration, message: error.description)
        }
        let secrets = Redactor.forms(ofPassword: info.password)
        guard !database.isEmpty else { throw BackupError(stage: .configuration, message: "the target database name is empty") }
        guard database != maintenanceDatabase else {
            throw BackupError(
                stage: .configuration, message: "cannot restore into \(database): restore connects to it to create and rename databases",
                database: database)
        }
        guard access(path, R_OK) == 0 else {
            let code = errno
            throw BackupError(stage: .restore, message: "cannot read the backup: \(String(cString: strerror(code)))", path: path, errno: code)
        }
        do {
            _ = try await BackupVerifier(settings: settings).verify(path: path)
        } catch let error as BackupError {
            throw error.failedStep(RestoreStep.verify, target: database)
        }

        let admin: PostgresConnection
        do {
            admin = try await PostgresConnection.connect(
                info.conninfoString(overriding: ["dbname": maintenanceDatabase]), applicationName: "closebell restore")
        } catch {
            throw BackupError(stage: .connect, message: "cannot connect: \(error)", database: maintenanceDatabase, secrets: secrets)
                .failedStep(RestoreStep.connect, target: database)
        }
        do {
            let result = try await restore(path: path, into: database, info: info, admin: admin, force: force, started: started)
            await admin.close()
            return result
        } catch {
            await admin.close()
            throw error
        }
    }

    /// The restore once the file is verified and the server reached.
    private func restore(
        path: String, into database: String, info: ConnectionInfo, admin: PostgresConnection, force: Bool, started: Date
    ) async throws -> RestoreResult {
        let secrets = Redactor.forms(ofPassword: info.password)
        let fail = { (step: RestoreStep, detail: String) in
            BackupError(stage: .restore, message: detail, path: path, database: database, secrets: secrets)
                .failedStep(step, target: database)
        }

        let exists: Bool
        let timescale: Bool
        do {
            exists = !(try await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database])).isEmpty
            if exists {
                let relations = try await countUserRelations(info: info, database: database)
                if relations > 0, !force {
                    throw BackupError(
                        stage: .targetNotEmpty,
                        message: "database \(database) has \(relations) user table(s) or other relations; use --force (the force option) to replace it",
                        path: path, database: database)
                }
            }
            let available = try await admin.query("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
            timescale = available.isEmpty ? false : try await dumpCreatesTimescale(path: path)
        } catch let error as BackupError {
            throw error
        } catch {
            throw fail(.inspect, "\(error)")
        }

        let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let temporary = "closebell_restore_\(suffix)"
        let aside = "closebell_replaced_\(suffix)"
        let quotedTemporary = PostgresSession.quoteIdentifier(temporary)
        do {
            try await admin.execute("CREATE DATABASE \(quotedTemporary) TEMPLATE template0")
        } catch {
            throw fail(.create(temporary), "\(error)")
        }
        do {
            try await load(path: path, into: temporary, info: info, serverVersion: admin.serverVersion, timescale: timescale, secrets: secrets)
            try await swap(admin: admin, temporary: temporary, aside: aside, target: database, exists: exists)
        } catch {
            _ = try? await admin.execute("DROP DATABASE IF EXISTS \(quotedTemporary) WITH (FORCE)")
            guard let error = error as? BackupError else { throw fail(.load(temporary), "\(error)") }
            throw error.failedStep(nil, target: database, path: path)
        }
        var warnings: [String] = []
        if timescale {
            // Renaming a database stops its TimescaleDB scheduler ("you need to manually restart
            // any running background workers after this command"): start the restored one's.
            do {
                try await execute([Self.startTimescaleWorkers], in: database, info: info)
            } catch {
                warnings.append(
                    "TimescaleDB's background workers of \(database) could not be started: \(error); run SELECT _timescaledb_functions.start_background_workers() in it")
            }
        }
        if exists {
            do {
                try await admin.execute("DROP DATABASE \(PostgresSession.quoteIdentifier(aside)) WITH (FORCE)")
            } catch {
                warnings.append("the replaced database was renamed to \(aside) but could not be dropped: \(error); drop it by hand")
            }
        }
        return RestoreResult(
            path: path, database: database, created: !exists, replaced: exists, seconds: Date().timeIntervalSince(started),
            warnings: warnings)
    }

    /// Starts TimescaleDB's background workers of the current database (the function moved to
    /// `_timescaledb_functions` in 2.12).
    static let startTimescaleWorkers = """
        DO $$ BEGIN
            IF to_regproc('_timescaledb_functions.start_background_workers') IS NOT NULL THEN
                PERFORM _timescaledb_functions.start_background_workers();
            ELSE
                PERFORM _timescaledb_internal.start_background_workers();
            END IF;
        END $$
        """

    /// Loads the file into the (new, empty) database `name`; TimescaleDB's pre/post restore
    /// calls around it when `timescale`.
    private func load(path: String, into name: String, info: ConnectionInfo, serverVersion: Int, timescale: Bool, secrets: [String]) async throws {
        func fail(_ step: RestoreStep, _ error: Error) -> BackupError {
            BackupError(stage: .restore, message: "\(error)", path: path, database: name, secrets: secrets).failedStep(step, target: nil)
        }
        if timescale {
            do {
                try await execute(["CREATE EXTENSION IF NOT EXISTS timescaledb", "SELECT timescaledb_pre_restore()"], in: name, info: info)
            } catch {
                throw fail(.timescalePre(name), error)
            }
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw BackupError(stage: .restore, message: "cannot open the backup: \(String(cString: strerror(code)))", path: path, errno: code)
                .failedStep(RestoreStep.load(name), target: nil)
        }
        defer { close(fd) }
        let passfile = try PasswordFile(password: info.password, database: name)
        defer { passfile?.remove() }
        let environment = BackupRunner.childEnvironment(
            info: info, database: name, passfile: passfile?.path, connectTimeout: settings.connectTimeout)
        let psql = settings.psqlPath ?? PostgresPrograms.path(of: "psql", serverVersion: serverVersion)
        let commands = [
            ChildCommand(executable: settings.gzipPath, arguments: ["-dc"], environment: ChildEnvironment.base()),
            ChildCommand(executable: psql, arguments: ["-X", "-v", "ON_ERROR_STOP=1", "-q", "--single-transaction"], environment: environment),
        ]
        let step = RestoreStep.load(name)
        do {
            let outcome = try await Pipeline.run(commands, stdin: fd, timeout: settings.verifyTimeout, killGrace: settings.killGrace)
            let (gzip, restore) = (outcome.children[0], outcome.children[1])
            if outcome.timedOut || outcome.cancelled {
                throw BackupError(
                    stage: outcome.timedOut ? .timeout : .cancelled, message: "restore stopped", path: path, database: name,
                    program: restore.name, exitStatus: restore.status, stderrTail: restore.stderrTail, secrets: secrets
                ).failedStep(step, target: nil)
            } else if !gzip.status.succeeded {
                throw BackupError(
                    stage: .restore, message: "the backup could not be decompressed (truncated or corrupted)", path: path,
                    database: name, program: gzip.name, exitStatus: gzip.status, stderrTail: gzip.stderrTail, secrets: secrets
                ).failedStep(step, target: nil)
            } else if !restore.status.succeeded {
                throw BackupError(
                    stage: .restore, message: "psql failed (\(restore.status))", path: path, database: name,
                    program: restore.name, exitStatus: restore.status, stderrTail: restore.stderrTail, secrets: secrets
                ).failedStep(step, target: nil)
            }
        } catch let spawn as SpawnFailure {
            throw BackupError(stage: .restore, message: spawn.message, path: path, database: name, program: spawn.program, errno: spawn.errno)
                .failedStep(step, target: nil)
        }
        if timescale {
            do {
                try await execute(["SELECT timescaledb_post_restore()"], in: name, info: info)
            } catch {
                throw fail(.timescalePost(name), error)
            }
        }
    }

    /// Runs `statements` on a new connection to `database`, one after the other.
    private func execute(_ statements: [String], in database: String, info: ConnectionInfo) async throws {
        let connection = try await PostgresConnection.connect(
            info.conninfoString(overriding: ["dbname": database]), applicationName: "closebell restore")
        do {
            for statement in statements { try await connection.execute(statement) }
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    }

    /// Puts the loaded database `temporary` in the place of `target`, undoing what it did when
    /// a step fails.
    private func swap(admin: PostgresConnection, temporary: String, aside: String, target: String, exists: Bool) async throws {
        let (quotedTarget, quotedTemporary, quotedAside) = (
            PostgresSession.quoteIdentifier(target), PostgresSession.quoteIdentifier(temporary), PostgresSession.quoteIdentifier(aside))
        func fail(_ step: RestoreStep, _ error: Error) -> BackupError {
            BackupError(stage: .restore, message: "\(error)", database: target).failedStep(step, target: nil)
        }
        guard exists else {
            do {
                try await admin.execute("ALTER DATABASE \(quotedTemporary) RENAME TO \(quotedTarget)")
            } catch {
                throw fail(.renameIn(temporary, target), error)
            }
            return
        }
        let allowed: Bool
        do {
            allowed = try await admin.query("SELECT datallowconn FROM pg_database WHERE datname = $1", [target]).first?.decode("datallowconn") ?? true
            try await admin.execute("ALTER DATABASE \(quotedTarget) ALLOW_CONNECTIONS false")
        } catch {
            throw fail(.disconnect(target), error)
        }
        let restoreConnections = {
            if allowed { _ = try? await admin.execute("ALTER DATABASE \(quotedTarget) ALLOW_CONNECTIONS true") }
        }
        do {
            try await disconnectSessions(admin: admin, database: target)
        } catch {
            await restoreConnections()
            throw fail(.disconnect(target), error)
        }
        do {
            try await admin.execute("ALTER DATABASE \(quotedTarget) RENAME TO \(quotedAside)")
        } catch {
            await restoreConnections()
            throw fail(.renameAside(target, aside), error)
        }
        do {
            try await admin.execute("ALTER DATABASE \(quotedTemporary) RENAME TO \(quotedTarget)")
        } catch {
            _ = try? await admin.execute("ALTER DATABASE \(quotedAside) RENAME TO \(quotedTarget)")
            await restoreConnections()
            throw fail(.renameIn(temporary, target), error)
        }
    }

    /// Ends the sessions of `database` (which no longer accepts connections) and waits, up to
    /// `connectTimeout` seconds, until they are gone.
    private func disconnectSessions(admin: PostgresConnection, database: String) async throws {
        let deadline = Date().addingTimeInterval(Double(settings.connectTimeout))
        while true {
            let left: Int = try await admin.query(
                """
                SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()
                """, [database]).first?.decode("n") ?? 0
            if left == 0 { return }
            guard Date() < deadline else {
                throw RestoreProblem(description: "\(left) session(s) still connected after \(settings.connectTimeout) s")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// True when the dump creates the timescaledb extension (its `CREATE EXTENSION` comes near
    /// the top, so `grep -m1` stops reading early).
    private func dumpCreatesTimescale(path: String) async throws -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let outcome = try await Pipeline.run(
            [
                ChildCommand(executable: settings.gzipPath, arguments: ["-dc"], environment: ChildEnvironment.base()),
                ChildCommand(
                    executable: "grep", arguments: ["-q", "-m1", "-E", "^CREATE EXTENSION( IF NOT EXISTS)? timescaledb( |;)"],
                    environment: ChildEnvironment.base()),
            ], stdin: fd, timeout: settings.verifyTimeout, killGrace: settings.killGrace)
        return outcome.children[1].status.succeeded
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

/// A restore step's failure that is not a server error.
struct RestoreProblem: Error, CustomStringConvertible {
    let description: String
}

extension BackupError {
    /// The same error, its message saying which restore step failed and (with `target`) that
    /// the target database was not changed.
    func failedStep(_ step: RestoreStep?, target: String?, path: String? = nil) -> BackupError {
        var text = message
        if let step { text = "step '\(step)' failed: \(text)" }
        if let target { text += "; the database \(target) was not changed" }
        return BackupError(
            stage: stage, message: text, path: self.path ?? path, database: database, program: program, exitStatus: exitStatus,
            stderrTail: stderrTail, errno: errno, operation: "restore")
    }
}
