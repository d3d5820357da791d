import ArgumentParser

/// `closebell demo` (placeholder until it lands).
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "demo", abstract: "Not built yet.")
    func run() async throws { throw CommandFailure("closebell demo is not built yet") }
}
