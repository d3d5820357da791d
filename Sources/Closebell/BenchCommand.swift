import ArgumentParser

/// `closebell bench` (placeholder until it lands).
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Not built yet.")
    func run() async throws { throw CommandFailure("closebell bench is not built yet") }
}
