import ArgumentParser
import Foundation

/// Options every database-facing subcommand shares.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "PostgreSQL URL or key=value string (default: $DATABASE_URL, else libpq's PG* variables).")
    var databaseURL: String?

    /// The connection string to use: the flag, then `DATABASE_URL`, then empty (libpq defaults).
    var conninfo: String {
        if let databaseURL, !databaseURL.isEmpty { return databaseURL }
        return ProcessInfo.processInfo.environment["DATABASE_URL"] ?? ""
    }
}

/// An error printed to stderr as it is, with exit code 1 (or the code given).
struct CommandFailure: Error, CustomStringConvertible {
    let message: String
    let exitCode: Int32
    init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }
    var description: String { message }
}
