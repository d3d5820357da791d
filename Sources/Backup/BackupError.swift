import ChildProcess
import Foundation
import Toolkit
import JobQueue

/// Why a backup, verification or restore failed. A failed backup has removed its temporary
/// file and left every older backup in place (rotation only runs after success).
///
/// Every text it carries has the connection's password scrubbed out.
public struct BackupError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where it failed.
    public enum Stage: String, Sendable, Codable {
        /// A setting or argument is invalid.
        case configuration
        /// The database could not be reached (before pg_dump ran).
        case connect
        /// The backup folder or temporary files could not be set up.
        case prepare
        /// Another backup of the same database into the same folder is running.
        case locked
        /// pg_dump failed (its stderr is in `stderrTail`).
        case dump
        /// The compressor failed (a full disk shows here: `isDiskFull`).
        case compress
        /// The file is not a complete gzip-compressed dump.
        case verify
        /// Flushing, naming or syncing the finished file failed.
        case finalize
        /// The programs ran past their timeout and were killed.
        case timeout
        /// The job or task was cancelled and the programs were killed.
        case cancelled
        /// The restore target database has user tables and `force` was not given.
        case targetNotEmpty
        /// The restore (gzip -dc | psql) failed.
        case restore
    }

    /// Where it failed.
    public let stage: Stage
    /// What happened, for people.
    public let message: String
    /// The file concerned (the backup, or the temporary file).
    public let path: String?
    /// The database concerned.
    public let database: String?
    /// The program that failed (`pg_dump`, `pigz`, `gzip`, `psql`).
    public let program: String?
    /// How that program ended.
    public let exitStatus: ExitStatus?
    /// The end of the program's stderr (at most 4 kB).
    public let stderrTail: String
    /// The system error number, when a system call failed.
    public let errno: Int32?
    /// The operation that failed (`restore`), when the stage alone does not say it.
    public let operation: String?

    /// Creates an error; every text is scrubbed of `secrets` (and of URL passwords).
    public init(
        stage: Stage, message: String, path: String? = nil, database: String? = nil, program: String? = nil,
        exitStatus: ExitStatus? = nil, stderrTail: String = "", errno: Int32? = nil, secrets: [String] = [],
        operation: String? = nil
    ) {
        self.stage = stage
        self.message = Redactor.scrub(message, secrets: secrets)
        self.path = path
        self.database = database
        self.program = program
        self.exitStatus = exitStatus
        self.stderrTail = Redactor.scrub(stderrTail, secrets: secrets)
        self.errno = errno
        self.operation = operation
    }

    /// True when the disk (or quota) was full.
    public var isDiskFull: Bool {
        errno == ENOSPC || errno == EDQUOT || stderrTail.contains("No space left on device")
            || stderrTail.contains("Disk quota exceeded")
    }

    public var description: String {
        var operation = "backup"
        switch stage {
        case .targetNotEmpty, .restore: operation = "restore"
        case .verify: operation = "verification"
        default: break
        }
        if let named = self.operation { operation = named }
        var text = "\(operation) failed (\(stage.rawValue)): \(message)"
        if let database { text += " [database \(database)]" }
        if let path { text += " [file \(path)]" }
        if let program, let exitStatus { text += " [\(program): \(exitStatus)]" }
        if isDiskFull { text += " [disk full]" }
        if !stderrTail.isEmpty { text += "\n" + stderrTail }
        return text
    }
}

extension BackupError: JobFailure {
    /// False for an invalid setting or argument and for a restore target that is not empty:
    /// only a change by a user helps. True for the rest (the database unreachable, another
    /// backup holding the lock, pg_dump or the compressor failing, a timeout).
    public var retryable: Bool {
        switch stage {
        case .configuration, .targetNotEmpty: return false
        case .connect, .prepare, .locked, .dump, .compress, .verify, .finalize, .timeout, .cancelled, .restore: return true
        }
    }
}
