import ArgumentParser

/// `closebell enqueue` (placeholder until it lands).
struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "enqueue", abstract: "Not built yet.")
    func run() async throws { throw CommandFailure("closebell enqueue is not built yet") }
}
