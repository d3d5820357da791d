import ArgumentParser
import Backup
import Foundation
import PostgresClient

/// Options every database-facing subcommand shares.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "PostgreSQL URL or key=value string (default: $DATABASE_URL, $DATABASE_URL_FILE, the credential database_url, else libpq's PG* variables). A password here shows in ps: prefer DATABASE_URL_FILE or ~/.pgpass.")
    var databaseURL: String?

    /// The connection string to use: the flag, then `DATABASE_URL`, `DATABASE_URL_FILE` or the
    /// systemd credential `database_url` (see `Secrets`), then empty (libpq defaults). An
    /// unreadable secret file was refused before the command ran (`Closebell.main`).
    var conninfo: String {
        if let databaseURL, !databaseURL.isEmpty { return databaseURL }
        return (try? Secrets.value("DATABASE_URL", credential: "database_url")) ?? ""
    }

    /// Opens a connection; a server that cannot be reached ends the command with exit code 69.
    func connect(applicationName: String) async throws -> PostgresConnection {
        do {
            return try await PostgresConnection.connect(conninfo, applicationName: applicationName)
        } catch let error as PostgresError where error.kind == .connection {
            throw CommandFailure("cannot reach the database: \(error)", exitCode: ExitStatusCode.unavailable)
        }
    }

    /// Connects once and closes again: the check `worker` makes before it starts.
    func checkReachable() async throws {
        let connection = try await connect(applicationName: "closebell start check")
        await connection.close()
    }
}

/// The exit codes scripts and systemd can act on (sysexits.h).
enum ExitStatusCode {
    /// A failure with no more specific code.
    static let failure: Int32 = 1
    /// `EX_USAGE`: bad flags or arguments (swift-argument-parser's own code for them).
    static let usage: Int32 = 64
    /// `EX_UNAVAILABLE`: the database could not be reached when the command started.
    static let unavailable: Int32 = 69
    /// `EX_TEMPFAIL`: a temporary failure (connection lost, lock held, timeout); try again later.
    static let temporary: Int32 = 75
    /// `EX_CONFIG`: the configuration (file, environment, secret files) is wrong.
    static let config: Int32 = 78
}

/// An error printed to stderr as it is, ending the command with `exitCode`.
struct CommandFailure: Error, CustomStringConvertible {
    /// What went wrong, for the user.
    let message: String
    /// The process's exit code (`ExitStatusCode`).
    let exitCode: Int32

    init(_ message: String, exitCode: Int32 = ExitStatusCode.failure) {
        self.message = message
        self.exitCode = exitCode
    }

    var description: String { message }

    /// The failure (message and exit code) an error ends the command with; nil for the errors
    /// swift-argument-parser reports itself (usage errors, help, `ExitCode`).
    static func classify(_ error: Error) -> CommandFailure? {
        switch error {
        case let failure as CommandFailure:
            return failure
        case let config as ConfigError:
            return CommandFailure(config.description, exitCode: ExitStatusCode.config)
        case let postgres as PostgresError:
            if postgres.kind == .connection { return CommandFailure("database unavailable: \(postgres)", exitCode: ExitStatusCode.unavailable) }
            let temporary = postgres.isConnectionLost || ["40001", "40P01", "55P03"].contains(postgres.sqlState ?? "")
                || (postgres.sqlState ?? "").hasPrefix("53")
            return CommandFailure(postgres.description, exitCode: temporary ? ExitStatusCode.temporary : ExitStatusCode.failure)
        case let backup as BackupError:
            switch backup.stage {
            case .configuration: return CommandFailure(backup.description, exitCode: ExitStatusCode.config)
            case .connect: return CommandFailure(backup.description, exitCode: ExitStatusCode.unavailable)
            case .locked, .timeout: return CommandFailure(backup.description, exitCode: ExitStatusCode.temporary)
            default: return CommandFailure(backup.description)
            }
        default:
            return nil
        }
    }
}
