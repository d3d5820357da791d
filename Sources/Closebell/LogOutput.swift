import Foundation
import Logging

/// Writes one JSON object per line to stderr: `{"ts":…,"level":…,"event":…, metadata…}`.
/// With `human` format it writes `ts level event key=value…` instead (for terminals).
struct LineLogHandler: LogHandler {
    enum Format: String, CaseIterable, Sendable { case json, text }

    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    let label: String
    let format: Format

    private static let lock = NSLock()

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let level = event.level, message = event.message
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        let timestamp = Self.timestamp()
        let text: String
        switch format {
        case .json:
            var object: [String: String] = ["ts": timestamp, "level": level.rawValue, "event": message.description]
            for (key, value) in fields { object[key] = "\(value)" }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            text = String(decoding: data, as: UTF8.self)
        case .text:
            let pairs = fields.sorted { $0.key < $1.key }.map { key, value -> String in
                let raw = "\(value)"
                return raw.contains(" ") ? "\(key)=\"\(raw)\"" : "\(key)=\(raw)"
            }
            text = ([timestamp, level.rawValue.uppercased(), message.description] + pairs).joined(separator: " ")
        }
        Self.lock.withLock { FileHandle.standardError.write(Data((text + "\n").utf8)) }
    }

    /// One shared (Sendable) format, not a formatter built per line: logging is on the job path.
    private static let timestampStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    private static func timestamp() -> String {
        Date().formatted(timestampStyle)
    }
}

/// Logging setup shared by the long-running subcommands.
enum LogSetup {
    /// Installs the line handler once: JSON lines unless `format` says text; the default is
    /// text when stderr is a terminal, JSON otherwise.
    static func bootstrap(format: String?, level: String?) {
        let chosen = LineLogHandler.Format(rawValue: format ?? "") ?? (isatty(2) == 1 ? .text : .json)
        let logLevel = Logger.Level(rawValue: level ?? "info") ?? .info
        LoggingSystem.bootstrap { label in
            var handler = LineLogHandler(label: label, format: chosen)
            handler.logLevel = logLevel
            return handler
        }
    }
}
