import ArgumentParser
import Foundation
import PostgresClient
import SchemaMigrations

/// `closebell migrate`: applies pending migrations.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending migrations from migrations/ (safe to run from several processes at once).")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Folder of the numbered SQL files (default: $CLOSEBELL_MIGRATIONS_DIR or the installed/checked-out migrations/).")
    var directory: String?

    func run() async throws {
        let folder = try directory.map { URL(fileURLWithPath: $0) } ?? Migrator.locateDirectory()
        let migrator = try Migrator(directory: folder)
        let connection = try await PostgresConnection.connect(database.conninfo, applicationName: "closebell migrate")
        let applied = try await migrator.migrate(connection)
        if applied.isEmpty {
            print("schema is up to date (\(migrator.files.count) migrations)")
        } else {
            for file in applied { print("applied \(file.name)") }
        }
    }
}
