import ArgumentParser

/// `closebell status` (placeholder until it lands).
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Not built yet.")
    func run() async throws { throw CommandFailure("closebell status is not built yet") }
}
