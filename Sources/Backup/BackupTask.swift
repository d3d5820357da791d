import Foundation
import JobQueue
import Logging

/// The `backup` job task: runs `BackupRunner` against the queue's database.
///
/// Arguments (all optional): `keep` (integer ≥ 1) replaces the settings' keep-newest count for
/// this run; `label` (1 to 64 letters, digits, `-` or `_`, e.g. "monthly") is only recorded in
/// the result and the log: it does not change the file name or which files rotation keeps
/// (use `keepDaily`/`keepWeekly`/`keepMonthly` for that). The result is the `BackupResult`.
public struct BackupTask: JobTask {
    /// "backup".
    public let name = "backup"
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
    public func run(_ context: JobContext) async throws -> JobResult {
        let arguments = try context.decodeArgs(Arguments.self, allowedKeys: ["keep", "label"])
        var settings = self.settings
        if let keep = arguments.keep {
            guard keep >= 1 else { throw InvalidJobArguments(task: name, reason: "keep must be at least 1 (got \(keep))") }
            settings.keep = keep
        }
        if let label = arguments.label {
            let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_"))
            guard (1...64).contains(label.count), label.unicodeScalars.allSatisfy({ $0.isASCII && allowed.contains($0) }) else {
                throw InvalidJobArguments(task: name, reason: "label must be 1 to 64 letters, digits, '-' or '_'")
            }
        }
        try context.checkCancellation()
        context.logger.info("backup_started", metadata: ["directory": "\(settings.directory.path)", "label": "\(arguments.label ?? "")"])
        let result = try await BackupRunner(settings: settings).run(
            conninfo: context.conninfo, label: arguments.label, isCancelled: { context.isCancelled })
        context.logger.info("backup_finished", metadata: [
            "path": "\(result.path)", "bytes": "\(result.bytes)", "seconds": "\(result.seconds)",
            "rotated": "\(result.rotated.count)",
        ])
        return try JobResult(result)
    }
}
