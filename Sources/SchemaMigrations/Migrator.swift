import Foundation
import PostgresClient

/// One numbered SQL file in `migrations/`, such as `0001_job_queue.sql`.
public struct MigrationFile: Sendable, Equatable {
    /// The number before the first underscore.
    public let version: Int
    /// The file name.
    public let name: String
    /// The SQL text.
    public let sql: String
}

/// Why migrating failed.
public enum MigrationError: Error, CustomStringConvertible {
    /// No `migrations/` folder was found; carries the places searched.
    case directoryNotFound([String])
    /// A file name does not start with a number and an underscore.
    case badFileName(String)
    /// Two files share a number.
    case duplicateVersion(Int, String, String)
    /// An applied migration's file changed since it was applied.
    case checksumMismatch(version: Int, name: String)
    /// The database has a migration this program does not know (a newer closebell ran).
    case unknownAppliedVersion(Int, String)
    /// A migration failed; carries the file name and the server's error.
    case failed(name: String, error: PostgresError)

    public var description: String {
        switch self {
        case .directoryNotFound(let places):
            return "migrations folder not found (set CLOSEBELL_MIGRATIONS_DIR); looked in: \(places.joined(separator: ", "))"
        case .badFileName(let name):
            return "migration file \(name) must be named NNNN_description.sql"
        case .duplicateVersion(let version, let a, let b):
            return "migration number \(version) is used by both \(a) and \(b)"
        case .checksumMismatch(let version, let name):
            return "migration \(version) (\(name)) was edited after it was applied; restore the file or write a new migration"
        case .unknownAppliedVersion(let version, let name):
            return "the database has migration \(version) (\(name)) that this closebell does not know: it is older than the schema"
        case .failed(let name, let error):
            return "migration \(name) failed: \(error)"
        }
    }
}

/// Applies the numbered SQL files of `migrations/` in order, each exactly once.
///
/// Each file runs in its own transaction and is recorded, with an md5 checksum, in
/// `closebell_migrations`. A session-level advisory lock makes concurrent runs (several workers
/// starting at once) wait for each other; the later ones then find nothing to do.
public struct Migrator: Sendable {
    /// The files, sorted by version.
    public let files: [MigrationFile]

    /// The advisory lock key used while migrating (`closebell` in ASCII).
    public static let lockKey: Int64 = 0x636C_6F73_6562_656C

    /// Reads the migration files from a folder.
    public init(directory: URL) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".sql") }.sorted()
        var byVersion: [Int: String] = [:]
        var files: [MigrationFile] = []
        for name in names {
            guard let prefix = name.split(separator: "_").first, let version = Int(prefix) else {
                throw MigrationError.badFileName(name)
            }
            if let other = byVersion[version] { throw MigrationError.duplicateVersion(version, other, name) }
            byVersion[version] = name
            let sql = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            files.append(MigrationFile(version: version, name: name, sql: sql))
        }
        self.files = files.sorted { $0.version < $1.version }
    }

    /// Finds `migrations/`: `$CLOSEBELL_MIGRATIONS_DIR`, `<prefix>/share/closebell/migrations`
    /// beside the executable, then the executable's folder and its parents (a source checkout),
    /// then the current directory.
    public static func locateDirectory() throws -> URL {
        var candidates: [String] = []
        let environment = ProcessInfo.processInfo.environment
        if let dir = environment["CLOSEBELL_MIGRATIONS_DIR"], !dir.isEmpty {
            candidates.append(dir)
        }
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
        var folder = executable.deletingLastPathComponent()
        candidates.append(folder.appendingPathComponent("../share/closebell/migrations").standardized.path)
        for _ in 0..<6 {
            candidates.append(folder.appendingPathComponent("migrations").path)
            folder = folder.deletingLastPathComponent()
        }
        candidates.append(FileManager.default.currentDirectoryPath + "/migrations")
        for path in candidates {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path + "/0001_job_queue.sql", isDirectory: &isDirectory) {
                return URL(fileURLWithPath: path)
            }
        }
        throw MigrationError.directoryNotFound(candidates)
    }

    /// Applies pending migrations; returns the files applied by this call.
    public func migrate(_ connection: PostgresConnection) async throws -> [MigrationFile] {
        let files = self.files
        return try await connection.withSession { session in try Self.migrate(session, files: files) }
    }

    /// The blocking implementation, on the connection's thread.
    public static func migrate(_ session: PostgresSession, files: [MigrationFile]) throws -> [MigrationFile] {
        try session.query("SELECT pg_advisory_lock($1)", [lockKey])
        defer { _ = try? session.query("SELECT pg_advisory_unlock($1)", [lockKey]) }
        try session.execute("""
            CREATE TABLE IF NOT EXISTS closebell_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        _ = session.takeNotices()
        var applied: [Int: (name: String, checksum: String)] = [:]
        for row in try session.query("SELECT version, name, checksum FROM closebell_migrations") {
            applied[try row.decode("version")] = (try row.decode("name"), try row.decode("checksum"))
        }
        let known = Set(files.map(\.version))
        if let unknown = applied.keys.sorted().first(where: { !known.contains($0) }) {
            throw MigrationError.unknownAppliedVersion(unknown, applied[unknown]!.name)
        }
        var done: [MigrationFile] = []
        for file in files {
            let checksum: String = try session.query("SELECT md5($1) AS sum", [file.sql]).first!.decode("sum")
            if let existing = applied[file.version] {
                guard existing.checksum == checksum else {
                    throw MigrationError.checksumMismatch(version: file.version, name: file.name)
                }
                continue
            }
            do {
                try session.transaction { tx in
                    try tx.execute(file.sql)
                    try tx.query(
                        "INSERT INTO closebell_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        [file.version, file.name, checksum])
                }
            } catch let error as PostgresError {
                throw MigrationError.failed(name: file.name, error: error)
            }
            done.append(file)
        }
        return done
    }
}
