import ArgumentParser

/// The `closebell` command: a maintenance worker for PostgreSQL/TimescaleDB market-data databases.
@main
struct Closebell: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "closebell",
        abstract: "Maintenance worker for PostgreSQL/TimescaleDB market-data databases.",
        discussion: """
            Jobs are rows in maintenance_jobs; any number of workers claim them with
            SELECT ... FOR UPDATE SKIP LOCKED. Connection: --database-url, DATABASE_URL, or
            libpq's PG* variables, service file and .pgpass.
            """,
        subcommands: [
            MigrateCommand.self, WorkerCommand.self, EnqueueCommand.self, StatusCommand.self,
            JobsCommand.self, BackupCommand.self, DemoCommand.self, BenchCommand.self,
            ReportCommand.self,
        ]
    )
}
