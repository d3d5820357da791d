import ArgumentParser

/// `closebell jobs` (placeholder until it lands).
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "jobs", abstract: "Not built yet.")
    func run() async throws { throw CommandFailure("closebell jobs is not built yet") }
}
