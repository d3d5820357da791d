import ArgumentParser
import ChildProcess
import Foundation

/// The `closebell` command: a maintenance worker for PostgreSQL/TimescaleDB market-data databases.
@main
struct Closebell: AsyncParsableCommand {
    /// The version `closebell --version` prints.
    static let version = "0.9.0"

    static let configuration = CommandConfiguration(
        commandName: "closebell",
        abstract: "Maintenance worker for PostgreSQL/TimescaleDB market-data databases.",
        discussion: """
            Jobs are rows in maintenance_jobs; any number of workers claim them with
            SELECT ... FOR UPDATE SKIP LOCKED. Connection: --database-url, DATABASE_URL,
            DATABASE_URL_FILE, or libpq's PG* variables, service file and .pgpass.
            Exit status: 0 success; 1 failure; 64 usage error; 69 database unreachable at
            start; 75 temporary failure (try again later); 78 configuration error.
            """,
        version: version,
        subcommands: [
            MigrateCommand.self, WorkerCommand.self, EnqueueCommand.self, StatusCommand.self,
            JobsCommand.self, BackupCommand.self, DemoCommand.self, BenchCommand.self,
            ReportCommand.self,
        ]
    )

    /// Parses and runs the command. A failure prints its message on stderr and exits with the
    /// code of `ExitStatusCode.classify`; usage errors are swift-argument-parser's (64).
    static func main() async {
        ignoreBrokenPipes()
        do {
            var command = try parseAsRoot()
            // A secret file that cannot be read is a configuration error (78) before anything runs.
            _ = try Secrets.environment()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            guard let failure = CommandFailure.classify(error) else { exit(withError: error) }
            FileHandle.standardError.write(Data("Error: \(failure.message)\n".utf8))
            exit(withError: ExitCode(failure.exitCode))
        }
    }
}
