import CChildProcess
import ChildProcess
import Foundation
import Toolkit
import PostgresClient

#if canImport(Glibc)
import Glibc
#endif

/// What a successful backup produced.
public struct BackupResult: Sendable, Codable, Equatable {
    /// The backup file.
    public let path: String
    /// Its size.
    public let bytes: Int64
    /// The size of the SQL inside (decompressed): the bytes pg_dump wrote.
    public let dumpBytes: Int64
    /// Seconds from start to the verified, renamed file (rotation excluded).
    public let seconds: Double
    /// Of which pg_dump piped into the compressor ran.
    public let dumpSeconds: Double
    /// Of which the final checks ran (the streams are checked while the file is written;
    /// this is the comparison of the two at the end, and the fsync).
    public let verifySeconds: Double
    /// The database dumped.
    public let database: String
    /// Backups removed by rotation.
    public let rotated: [String]
    /// Backups rotation could not remove, with the reason (the backup itself succeeded).
    public let rotationErrors: [String]
    /// The compressor that ran (path or name).
    public let compressor: String
    /// The pg_dump that ran (path or name).
    public let pgDump: String
    /// When the backup started, ISO 8601 in UTC (the file name has the same time).
    public let startedAt: String
    /// The job's label (`monthly`, ...), when a task gave one; it is part of the file name.
    public let label: String?
    /// How many newest backups of this database and label rotation kept.
    public let keep: Int

    /// snake_case keys, like every other task result.
    enum CodingKeys: String, CodingKey {
        case path, bytes, seconds, database, rotated, compressor, label, keep
        case dumpBytes = "dump_bytes", dumpSeconds = "dump_seconds", verifySeconds = "verify_seconds"
        case rotationErrors = "rotation_errors", pgDump = "pg_dump", startedAt = "started_at"
    }
}

/// Makes a backup: `pg_dump` piped into `pigz`/`gzip`, written to a hidden temporary file
/// (mode 0600), checked while it is written (`StreamChecks`: both streams pass through this
/// process on their way, the file is never read back), renamed to `{database}_{YYYYMMDD_HHMMSS}.sql.gz`
/// (UTC time of the start; `…+{label}.sql.gz` for a labelled backup), then older backups of
/// the same database and label rotated.
///
/// One backup per database at a time: a session-level advisory lock in that database (held
/// by a connection with no open transaction for the whole backup) stops a second host, and a
/// lock file in the folder a second process on this host.
///
/// The password never reaches a command line: host, port, user, database and the other
/// connection keywords go to pg_dump as `PG*` variables, the password through a temporary
/// 0600 `PGPASSFILE` deleted afterwards.
public struct BackupRunner: Sendable {
    /// The settings used.
    public let settings: BackupSettings

    /// Creates a runner.
    public init(settings: BackupSettings) { self.settings = settings }

    /// Backs up the database `conninfo` names (URL, key=value, or empty for libpq defaults).
    /// `label` goes into the file name, and rotation keeps labelled backups by their own count
    /// (`keepLabelled`). `keep` may raise (never lower) the number of newest backups rotation
    /// keeps. `isCancelled` is polled while the programs run; when it turns true (or the task
    /// is cancelled) they are killed and `.cancelled` is thrown.
    public func run(
        conninfo: String?, label: String? = nil, keep: Int? = nil, isCancelled: @escaping @Sendable () -> Bool = { false }
    ) async throws -> BackupResult {
        let started = Date()
        try settings.validate()
        if let label, !BackupNaming.isValidLabel(label) {
            throw BackupError(stage: .configuration, message: "label must be 1 to 64 letters, digits, '-' or '_' (got \(label))")
        }
        if let keep, keep < 1 { throw BackupError(stage: .configuration, message: "keep must be at least 1 (got \(keep))") }
        let info: ConnectionInfo
        do {
            info = try ConnectionInfo(parsing: conninfo)
        } catch let error as ConnectionInfoError {
            throw BackupError(stage: .configuration, message: error.description)
        }
        let secrets = Redactor.forms(ofPassword: info.password)

        // Preflight: the real database name (libpq defaults included) and the server version;
        // the connection then holds the advisory lock.
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(conninfo, applicationName: "closebell backup")
        } catch {
            if Task.isCancelled || isCancelled() {
                throw BackupError(stage: .cancelled, message: "backup cancelled before pg_dump started", database: info.databaseName)
            }
            throw BackupError(
                stage: .connect, message: "cannot connect: \(error)", database: info.databaseName, secrets: secrets)
        }
        let server = (name: connection.databaseName, version: connection.serverVersion)
        do {
            try await DatabaseLock.acquire(connection: connection, database: server.name)
        } catch {
            await connection.close()
            throw error
        }
        do {
            let result = try await backUp(
                server: server, info: info, secrets: secrets, label: label, keep: keep, started: started, isCancelled: isCancelled)
            await DatabaseLock.release(connection: connection)
            return result
        } catch {
            await DatabaseLock.release(connection: connection)
            throw error
        }
    }

    /// The backup itself, once the database is locked.
    private func backUp(
        server: (name: String, version: Int), info: ConnectionInfo, secrets: [String], label: String?, keep: Int?, started: Date,
        isCancelled: @escaping @Sendable () -> Bool
    ) async throws -> BackupResult {
        if Task.isCancelled || isCancelled() {
            throw BackupError(stage: .cancelled, message: "backup cancelled before pg_dump started", database: server.name)
        }
        let database = server.name
        let directory = settings.directory
        try prepareDirectory(directory, database: database)

        let lock = try DirectoryLock(directory: directory, database: database)
        defer { lock.release() }
        removeStalePartials(directory: directory, database: database)

        let pgDump = settings.pgDumpPath ?? PostgresPrograms.path(of: "pg_dump", serverVersion: server.version)
        let compressor = settings.resolvedCompressor
        let temporary = directory.appendingPathComponent(BackupNaming.temporaryName(database: database, date: started, label: label)).path
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            let code = errno
            throw BackupError(
                stage: .prepare, message: "cannot create \(temporary): \(String(cString: strerror(code)))",
                path: temporary, database: database, errno: code)
        }
        var finished = false
        defer {
            close(fd)
            if !finished { unlink(temporary) }
        }
        fchmod(fd, 0o600)

        let passfile = try PasswordFile(password: info.password, database: database)
        defer { passfile?.remove() }
        let environment = Self.childEnvironment(
            info: info, database: database, passfile: passfile?.path, connectTimeout: settings.connectTimeout)
        let dump = ChildCommand(
            executable: pgDump, arguments: Self.pgDumpArguments(lockWaitTimeout: settings.lockWaitTimeout),
            environment: environment)
        let compress = ChildCommand(
            executable: compressor, arguments: ["-c", "-\(settings.compressionLevel)"],
            environment: ChildEnvironment.base())

        // pg_dump's output and the compressor's both pass through this process: the first is
        // checked (CRC-32, length, trailer line) on its way to the compressor, the second (gzip
        // header and trailer) on its way to the file.
        let dumpCheck = StreamChecks.Dump()
        let gzipCheck = StreamChecks.Gzip()
        let dumpTap = StreamTap(observe: dumpCheck.observe)
        let fileTap = StreamTap(observe: gzipCheck.observe)
        let outcome: PipelineOutcome
        let dumpStarted = Date()
        do {
            outcome = try await Pipeline.run(
                [dump, compress], stdout: fd, taps: [0: dumpTap, 1: fileTap], timeout: settings.dumpTimeout,
                killGrace: settings.killGrace, isCancelled: isCancelled)
        } catch let failure as SpawnFailure {
            throw BackupError(stage: .prepare, message: failure.message, path: temporary, database: database, program: failure.program, errno: failure.errno)
        }
        try Self.check(outcome, fileTap: fileTap, path: temporary, database: database, secrets: secrets)
        let dumpSeconds = Date().timeIntervalSince(dumpStarted)

        let verifyStarted = Date()
        if let failure = StreamChecks.failure(dump: dumpCheck, gzip: gzipCheck) {
            throw BackupError(stage: .verify, message: failure, path: temporary, database: database)
        }
        guard fsync(fd) == 0 else {
            let code = errno
            throw BackupError(
                stage: .finalize, message: "fsync failed: \(String(cString: strerror(code)))", path: temporary,
                database: database, errno: code)
        }
        let verifySeconds = Date().timeIntervalSince(verifyStarted)

        let final = try publish(temporary: temporary, directory: directory, database: database, label: label, started: started)
        finished = true
        let seconds = Date().timeIntervalSince(started)

        let keepCount = settings.keepCount(label: label, requested: keep)
        let (rotated, rotationErrors) = rotate(directory: directory, database: database, label: label, keep: keepCount, keepPath: final)
        return BackupResult(
            path: final, bytes: gzipCheck.bytes, dumpBytes: dumpCheck.bytes, seconds: seconds, dumpSeconds: dumpSeconds,
            verifySeconds: verifySeconds, database: database, rotated: rotated, rotationErrors: rotationErrors, compressor: compressor, pgDump: pgDump,
            startedAt: ISO8601DateFormatter().string(from: started), label: label, keep: keepCount)
    }

    // MARK: - Pieces (internal so tests can inspect them)

    /// pg_dump's arguments: plain SQL to stdout, never prompting. Nothing secret is in them.
    static func pgDumpArguments(lockWaitTimeout: Double?) -> [String] {
        var arguments = ["--format=plain", "--no-password"]
        if let lockWaitTimeout { arguments.append("--lock-wait-timeout=\(Int((lockWaitTimeout * 1000).rounded()))") }
        return arguments
    }

    /// The environment of pg_dump/psql (`ChildEnvironment.postgres`): no secret of this process,
    /// its `PG*` variables, the connection string's keywords as `PG*` variables, `PGDATABASE` set
    /// to `database`, and the password only by `PGPASSFILE`.
    static func childEnvironment(info: ConnectionInfo, database: String, passfile: String?, connectTimeout: Int) -> [String: String] {
        var connection = info.environment(includingPassword: false)
        connection["PGDATABASE"] = database
        var environment = ChildEnvironment.postgres(connection: connection, passfile: passfile)
        if environment["PGCONNECT_TIMEOUT"] == nil { environment["PGCONNECT_TIMEOUT"] = String(connectTimeout) }
        if environment["PGAPPNAME"] == nil { environment["PGAPPNAME"] = "closebell backup" }
        return environment
    }

    /// Turns a failed pipeline into the error that names the real cause. `fileTap` wrote the
    /// compressor's output to the file: a failed write there (a full disk) is the cause when it
    /// happened, the compressor then died of the closed pipe.
    static func check(_ outcome: PipelineOutcome, fileTap: StreamTap, path: String, database: String, secrets: [String]) throws {
        let dump = outcome.children[0]
        let compress = outcome.children[outcome.children.count - 1]
        if outcome.cancelled {
            throw BackupError(stage: .cancelled, message: "backup cancelled; pg_dump was stopped", path: path, database: database, secrets: secrets)
        }
        if outcome.timedOut {
            throw BackupError(
                stage: .timeout, message: "pg_dump did not finish in time and was stopped", path: path, database: database,
                program: dump.name, exitStatus: dump.status, stderrTail: dump.stderrTail, secrets: secrets)
        }
        if let code = fileTap.writeError {
            throw BackupError(
                stage: .compress, message: "cannot write the backup file: \(String(cString: strerror(code)))", path: path,
                database: database, program: compress.name, exitStatus: compress.status, errno: code, secrets: secrets)
        }
        // A compressor that failed makes pg_dump fail too, by SIGPIPE: report the cause.
        if !compress.status.succeeded {
            throw BackupError(
                stage: .compress, message: "\(compress.name) failed (\(compress.status))", path: path, database: database,
                program: compress.name, exitStatus: compress.status, stderrTail: compress.stderrTail, secrets: secrets)
        }
        if !dump.status.succeeded {
            throw BackupError(
                stage: .dump, message: "pg_dump failed (\(dump.status))", path: path, database: database,
                program: dump.name, exitStatus: dump.status, stderrTail: dump.stderrTail, secrets: secrets)
        }
    }

    private func prepareDirectory(_ directory: URL, database: String) throws {
        do {
            try FileManager.default.createDirectory(
                at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw BackupError(stage: .prepare, message: "cannot create the backup folder: \(error.localizedDescription)", path: directory.path, database: database)
        }
    }

    /// Removes temporary files of this database left by a backup process that was killed
    /// (safe: the locks prove no other backup of it is running). Only names that parse as
    /// this database's: `prod`'s run never touches `prod_x`'s file in progress.
    private func removeStalePartials(directory: URL, database: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        where name.hasPrefix(".") && name.hasSuffix(".sql.gz.partial")
            && BackupNaming.parse(String(name.dropFirst().dropLast(".partial".count)), database: database) != nil {
            unlink(directory.appendingPathComponent(name).path)
        }
    }

    /// Gives the verified file its final name without ever replacing a file (a second backup
    /// within the same second takes the next free second), then syncs the folder.
    private func publish(temporary: String, directory: URL, database: String, label: String?, started: Date) throws -> String {
        for offset in 0..<120 {
            let final = directory.appendingPathComponent(
                BackupNaming.fileName(database: database, date: started.addingTimeInterval(Double(offset)), label: label)).path
            if link(temporary, final) == 0 {
                unlink(temporary)
                syncDirectory(directory)
                return final
            }
            let code = errno
            if code == EEXIST { continue }
            // Filesystems without hard links: rename, after checking the name is free.
            if (code == EPERM || code == ENOTSUP || code == EXDEV), access(final, F_OK) != 0, rename(temporary, final) == 0 {
                syncDirectory(directory)
                return final
            }
            throw BackupError(
                stage: .finalize, message: "cannot name the backup \(final): \(String(cString: strerror(code)))",
                path: temporary, database: database, errno: code)
        }
        throw BackupError(stage: .finalize, message: "no free backup name", path: temporary, database: database)
    }

    private func syncDirectory(_ directory: URL) {
        let fd = open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    /// Rotates the backups of `database` with the same `label` (unlabelled ones also by the
    /// daily/weekly/monthly counts); other databases' and other labels' files are never touched.
    private func rotate(directory: URL, database: String, label: String?, keep: Int, keepPath: String) -> (removed: [String], errors: [String]) {
        guard let all = try? BackupNaming.list(directory: directory, database: database) else {
            return ([], ["cannot list \(directory.path)"])
        }
        let files = all.filter { $0.label == label }
        let plan = label == nil
            ? BackupRotation.plan(
                files, keep: keep, keepDaily: settings.keepDaily, keepWeekly: settings.keepWeekly, keepMonthly: settings.keepMonthly)
            : BackupRotation.plan(files, keep: keep)
        var removed: [String] = []
        var errors: [String] = []
        for file in plan.removed where file.path != keepPath {
            if unlink(file.path) == 0 {
                removed.append(file.path)
            } else {
                errors.append("\(file.path): \(String(cString: strerror(errno)))")
            }
        }
        if !removed.isEmpty { syncDirectory(directory) }
        return (removed, errors)
    }
}

/// One backup per database across hosts: a session-level advisory lock in the database
/// itself, taken with `pg_try_advisory_lock(int, int)` on a connection that runs no
/// transaction while it holds it.
enum DatabaseLock {
    /// The lock's two keys: closebell's namespace (`clbk` in ASCII) and "backup". Advisory
    /// locks belong to one database, so the same keys lock each database separately.
    static let keys: (Int32, Int32) = (0x636C_626B, 1)

    /// Takes the lock or throws `.locked` naming the session that holds it.
    static func acquire(connection: PostgresConnection, database: String) async throws {
        let locked: Bool
        do {
            locked = try await connection.query("SELECT pg_try_advisory_lock($1, $2) AS locked", [keys.0, keys.1]).first?.decode("locked") ?? false
        } catch {
            throw BackupError(stage: .connect, message: "cannot take the backup lock: \(error)", database: database)
        }
        guard !locked else { return }
        let holder = try? await connection.query(
            """
            SELECT a.pid, coalesce(host(a.client_addr), 'local') AS client, a.application_name
              FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid = $1::int::oid AND l.objid = $2::int::oid AND l.objsubid = 2
            """, [keys.0, keys.1]).first
        let who = holder.map { row in
            "session \(row["pid"] ?? "?") from \(row["client"] ?? "?") (\(row["application_name"] ?? ""))"
        } ?? "another session"
        throw BackupError(
            stage: .locked, message: "another backup of \(database) is running (\(who) holds its backup lock)", database: database)
    }

    /// Releases the lock and closes its connection (closing alone would release it too).
    static func release(connection: PostgresConnection) async {
        _ = try? await connection.query("SELECT pg_advisory_unlock($1, $2)", [keys.0, keys.1])
        await connection.close()
    }
}

/// An exclusive `flock` on `{dir}/.{database}.lock` for the length of one backup.
final class DirectoryLock {
    private let fd: Int32

    init(directory: URL, database: String) throws {
        let path = directory.appendingPathComponent(".\(BackupNaming.fileComponent(database)).lock").path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            let code = errno
            throw BackupError(stage: .prepare, message: "cannot open \(path): \(String(cString: strerror(code)))", path: path, database: database, errno: code)
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw BackupError(stage: .locked, message: "another backup of \(database) into this folder is running", path: path, database: database)
        }
    }

    func release() {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

/// A temporary 0600 password file (`*:*:*:*:password`) for `PGPASSFILE`; public for the backup
/// benchmark, which runs pg_dump alone as a backup does.
public final class PasswordFile: Sendable {
    /// The file's path.
    public let path: String

    /// nil when there is no password.
    public init?(password: String?, database: String) throws {
        guard let password, !password.isEmpty else { return nil }
        var template = Array((NSTemporaryDirectory() + "/closebell-pgpass-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { cchild_mkstemp_cloexec($0.baseAddress!) }
        guard fd >= 0 else {
            let code = errno
            throw BackupError(stage: .prepare, message: "cannot create a password file: \(String(cString: strerror(code)))", database: database, errno: code)
        }
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        fchmod(fd, 0o600)
        // In .pgpass, `:` and `\` are escaped with a backslash.
        let escaped = Redactor.pgpassEscaped(password)
        let line = Array("*:*:*:*:\(escaped)\n".utf8)
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == line.count else {
            unlink(path)
            throw BackupError(stage: .prepare, message: "cannot write the password file", database: database)
        }
    }

    /// Deletes the file.
    public func remove() { unlink(path) }
}
