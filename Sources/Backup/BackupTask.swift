import Foundation
import JobQueue
import Logging

/// The `backup` job task: runs `BackupRunner` against the queue's database.
///
/// Arguments (all optional): `label` (1 to 64 letters, digits, `-` or `_`, e.g. "monthly")
/// goes into the file name (`{db}_{stamp}+monthly.sql.gz`), and rotation keeps each label's
/// backups by its own count (`keepLabelled`: 4 weekly, 12 monthly, else `keep`), apart from
/// the unlabelled ones; `keep` (integer ≥ 1) may raise the number of newest backups of this
/// label that rotation keeps, never lower it below the configured count. The result is the
/// `BackupResult`.
public struct BackupTask: JobTask {
    /// `backup`: its arguments and summary (the `maintenance_task_types` row).
    public static let declaration = TaskDeclaration(
        name: "backup", arguments: ["keep": .integer, "label": .string],
        summary: "pg_dump | gzip into the backup directory, then rotation.",
        reports: [.path, .bytes, .seconds])
    /// The settings every run starts from.
    public let settings: BackupSettings

    /// Creates the task.
    public init(settings: BackupSettings) { self.settings = settings }

    /// The job's arguments.
    struct Arguments: Decodable {
        var keep: Int?
        var label: String?
    }

    /// Backs up the database; a failure throws the `BackupError` (retried like any job error).
    public func run(_ context: JobContext) async throws -> BackupResult {
        let arguments = try self.arguments(Arguments.self, of: context)
        if let keep = arguments.keep, keep < 1 {
            throw InvalidJobArguments(task: name, reason: "keep must be at least 1 (got \(keep))")
        }
        if let label = arguments.label, !BackupNaming.isValidLabel(label) {
            throw InvalidJobArguments(task: name, reason: "label must be 1 to 64 letters, digits, '-' or '_'")
        }
        try context.checkCancellation()
        context.logger.info("backup_started", metadata: ["directory": "\(settings.directory.path)", "label": "\(arguments.label ?? "")"])
        let result = try await BackupRunner(settings: settings).run(
            conninfo: context.conninfo, label: arguments.label, keep: arguments.keep, isCancelled: { context.isCancelled })
        context.logger.info("backup_finished", metadata: [
            "path": "\(result.path)", "bytes": "\(result.bytes)", "seconds": "\(result.seconds)",
            "rotated": "\(result.rotated.count)",
        ])
        return result
    }
}

extension BackupResult: TaskResult {}
