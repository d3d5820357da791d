import ArgumentParser

/// `closebell worker` (placeholder until it lands).
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "Not built yet.")
    func run() async throws { throw CommandFailure("closebell worker is not built yet") }
}
