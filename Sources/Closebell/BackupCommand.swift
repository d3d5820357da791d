import ArgumentParser
import Backup
import Foundation

/// `closebell backup`: make, list, verify and restore pg_dump backups.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Make, list, verify and restore gzip-compressed pg_dump backups.",
        discussion: """
            Files are {dbname}_{YYYYMMDD_HHMMSS}.sql.gz (UTC), or {dbname}_{YYYYMMDD_HHMMSS}+{label}.sql.gz
            for a labelled backup, mode 0600, in --dir (default: $CLOSEBELL_BACKUP_DIR, else ./backups).
            Characters of the database name other than letters, digits, '_', '-' and '.' are
            written %XX, so two databases never share file names.
            """,
        subcommands: [BackupRunCommand.self, BackupListCommand.self, BackupVerifyCommand.self, BackupRestoreCommand.self]
    )
}

/// The backup folder option shared by the subcommands.
struct BackupDirectoryOptions: ParsableArguments {
    @Option(name: .customLong("dir"), help: "Backup folder (default: $CLOSEBELL_BACKUP_DIR, the config file's backup.directory, else ./backups).")
    var directory: String?

    @Option(help: "YAML config file (default: $CLOSEBELL_CONFIG).")
    var config: String?

    /// A backup file as given, or inside the folder when it is a bare name not found here.
    func resolve(_ file: String) throws -> String {
        if file.contains("/") || FileManager.default.fileExists(atPath: file) { return file }
        return try settings.directory.appendingPathComponent(file).path
    }

    /// The config file's `backup:` settings, with `--dir` overriding the folder.
    var settings: BackupSettings {
        get throws {
            var settings = try ClosebellConfig.load(path: config).backup
            if let directory { settings.directory = URL(fileURLWithPath: directory) }
            return settings
        }
    }
}

/// Prints an encodable value as indented JSON with sorted keys.
private func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// A size for people: bytes, kB, MB or GB (powers of 1000).
private func size(_ bytes: Int64) -> String {
    let value = Double(bytes)
    if value < 1_000 { return "\(bytes) B" }
    if value < 1_000_000 { return String(format: "%.1f kB", value / 1_000) }
    if value < 1_000_000_000 { return String(format: "%.1f MB", value / 1_000_000) }
    return String(format: "%.2f GB", value / 1_000_000_000)
}

/// Turns a backup error into a command failure with the full explanation on stderr and the
/// exit code of its stage (75 for a held lock or a timeout, 69 when the database is unreachable).
private func failure(_ error: Error) -> Error {
    CommandFailure.classify(error) ?? error
}

/// `closebell backup run`.
struct BackupRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Back up the database now (pg_dump | pigz/gzip, verified, then rotation); exits non-zero on failure.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var folder: BackupDirectoryOptions

    @Option(help: "Keep at least this many newest backups of the database and label (never fewer than configured).")
    var keep: Int?

    @Option(help: "Label (weekly, monthly, ...): part of the file name; rotation keeps each label's backups by its own count.")
    var label: String?

    @Flag(help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        if let keep, keep < 1 { throw ValidationError("--keep must be at least 1") }
        if let label, !BackupNaming.isValidLabel(label) { throw ValidationError("--label must be 1 to 64 letters, digits, '-' or '_'") }
    }

    func run() async throws {
        let settings = try folder.settings
        do {
            let result = try await BackupRunner(settings: settings).run(conninfo: database.conninfo, label: label, keep: keep)
            if json {
                try printJSON(result)
            } else {
                print("backup \(result.path) (\(size(result.bytes)), \(String(format: "%.1f", result.seconds)) s, \(result.compressor))")
                for path in result.rotated { print("rotated away \(path)") }
                for problem in result.rotationErrors { print("could not remove \(problem)") }
            }
        } catch {
            throw failure(error)
        }
    }
}

/// `closebell backup list`.
struct BackupListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the backups in the folder, newest first.")

    @OptionGroup var folder: BackupDirectoryOptions

    @Flag(help: "Print the list as JSON.")
    var json = false

    func run() async throws {
        let directory = try folder.settings.directory
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CommandFailure("backup folder \(directory.path) does not exist")
        }
        do {
            let files = try BackupCatalog(settings: try folder.settings).list()
            if json {
                try printJSON(files)
                return
            }
            if files.isEmpty { print("no backups in \(try folder.settings.directory.path)") }
            let formatter = ISO8601DateFormatter()
            for file in files {
                let shown = size(file.bytes)
                print("\(formatter.string(from: file.created))  \(String(repeating: " ", count: max(0, 10 - shown.count)))\(shown)  \(file.path)")
            }
        } catch {
            throw failure(error)
        }
    }
}

/// `closebell backup verify FILE`.
struct BackupVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Check that a backup decompresses completely and ends with pg_dump's completion line.")

    @OptionGroup var folder: BackupDirectoryOptions

    @Argument(help: "The .sql.gz file.")
    var file: String

    func run() async throws {
        do {
            let result = try await BackupCatalog(settings: try folder.settings).verify(path: try folder.resolve(file))
            print("ok \(result.path) (\(size(result.bytes)), \(size(result.dumpBytes)) of SQL)")
        } catch {
            throw failure(error)
        }
    }
}

/// `closebell backup restore FILE --dbname NAME [--force]`.
struct BackupRestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a backup into a database, all or nothing.",
        discussion: """
            The whole file is verified first, then loaded into a new database with a
            temporary name; only when that succeeded is it swapped in (the target's sessions
            disconnected, the old database renamed aside and dropped). Any failure leaves the
            target exactly as it was and names the step that failed. A database that already
            has tables is refused unless --force.
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var folder: BackupDirectoryOptions

    @Argument(help: "The .sql.gz file.")
    var file: String

    @Option(help: "The database to restore into.")
    var dbname: String

    @Flag(help: "Replace the database even when it already has tables.")
    var force = false

    func run() async throws {
        do {
            let result = try await BackupCatalog(settings: try folder.settings)
                .restore(path: try folder.resolve(file), into: dbname, conninfo: database.conninfo, force: force)
            let how = result.created ? "created" : "replaced"
            print(String(format: "restored %@ into %@ (%@) in %.1f s", result.path, result.database, how, result.seconds))
            for warning in result.warnings { print("warning: \(warning)") }
        } catch {
            throw failure(error)
        }
    }
}
