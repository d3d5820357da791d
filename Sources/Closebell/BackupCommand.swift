import ArgumentParser

/// `closebell backup` (placeholder until it lands).
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "backup", abstract: "Not built yet.")
    func run() async throws { throw CommandFailure("closebell backup is not built yet") }
}
