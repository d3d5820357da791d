import Foundation
import Logging

/// Polls `condition` until it holds or `timeout` seconds pass; returns whether it held.
/// A wait for something to happen, never a timing assertion.
public func eventually(timeout: Double = 20, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return true }
        try await Task.sleep(nanoseconds: 50_000_000)
    }
    return try await condition()
}

/// Keeps every log line written through its `logger` in memory, to check what reaches logs:
/// `level message key=value… error`.
public final class LogCapture: @unchecked Sendable {
    private let lock = NSLock()
    private var captured: [String] = []

    /// Creates an empty capture.
    public init() {}

    /// The lines so far.
    public var lines: [String] { lock.withLock { captured } }
    /// The lines so far, joined with newlines.
    public var text: String { lines.joined(separator: "\n") }
    /// A logger at trace level writing into this capture.
    public var logger: Logger { Logger(label: "test.capture") { _ in Handler(capture: self) } }

    fileprivate func append(_ line: String) { lock.withLock { captured.append(line) } }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var fields = metadata
            if let extra = event.metadata { fields.merge(extra) { _, new in new } }
            let pairs = fields.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
            capture.append("\(event.level) \(event.message) \(pairs) \(event.error.map { "\($0)" } ?? "")")
        }
    }
}
