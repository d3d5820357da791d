import Foundation
import Toolkit
import Logging

/// Writes one log line per event to a `LogSink` (stderr by default).
///
/// JSON lines start with `ts`, `level`, `msg`, `event` and `logger`, in that order, then the
/// metadata keys sorted: `{"ts":"2026-01-02T21:00:00.123456Z","level":"info","msg":"task_completed",
/// "event":"task_completed","logger":"closebell.worker","duration_s":0.0012,…}`. A metadata key
/// that collides with one of those five is written as `meta_<key>`, so it can never overwrite them.
/// Numbers are written as JSON numbers (see `LogLine.appendValue`). The `text` format writes
/// `ts LEVEL msg key=value…` for terminals.
///
/// The hot path formats bytes by hand into one buffer (no Foundation formatter, no
/// JSONSerialization, no per-line `Date`), then appends them to the sink's buffer.
struct LineLogHandler: LogHandler {
    /// The line formats.
    enum Format: String, CaseIterable, Sendable { case json, text }

    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    let label: String
    let format: Format
    let sink: LogSink

    init(label: String, format: Format, sink: LogSink = .standardError) {
        self.label = label
        self.format = format
        self.sink = sink
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var line = LogLine(capacity: 320)
        let fields = Self.fields(metadata, event.metadata)
        let errorText = fields.contains(where: { $0.key == "error" }) ? nil : event.error.map { "\($0)" }
        switch format {
        case .json:
            line.append("{\"ts\":\"")
            line.appendTimestamp()
            line.append("\",\"level\":\"")
            line.append(event.level.rawValue)
            line.append("\",\"msg\":")
            line.appendQuoted(event.message.description)
            line.append(",\"event\":")
            line.appendQuoted(event.message.description)
            line.append(",\"logger\":")
            line.appendQuoted(label)
            for (key, value) in fields {
                line.append(",")
                line.appendQuoted(Self.reserved.contains(key) ? "meta_" + key : key)
                line.append(":")
                line.appendValue(value)
            }
            if let errorText {
                line.append(",\"error\":")
                line.appendQuoted(errorText)
            }
            line.append("}\n")
        case .text:
            line.appendTimestamp()
            line.append(" ")
            line.append(event.level.rawValue.uppercased())
            line.append(" ")
            line.append(event.message.description)
            for (key, value) in fields {
                line.append(" ")
                line.append(key)
                line.append("=")
                line.appendText(value)
            }
            if let errorText {
                line.append(" error=")
                line.appendText(.string(errorText))
            }
            line.append("\n")
        }
        sink.write(line.bytes, urgent: event.level >= .warning)
    }

    /// Keys of the line itself, which metadata cannot take.
    static let reserved: Set<String> = ["ts", "level", "msg", "event", "logger"]

    /// The handler's metadata with the event's on top (the event's value wins), sorted by key.
    private static func fields(_ base: Logger.Metadata, _ extra: Logger.Metadata?) -> [(key: String, value: Logger.Metadata.Value)] {
        guard let extra, !extra.isEmpty else { return base.sorted { $0.key < $1.key } }
        if base.isEmpty { return extra.sorted { $0.key < $1.key } }
        var merged = base
        merged.merge(extra) { _, new in new }
        return merged.sorted { $0.key < $1.key }
    }
}

/// One line being formatted: a byte buffer with hand-written encoders for JSON strings,
/// numbers and the UTC timestamp.
struct LogLine {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    /// `text` as a JSON string: quotes, backslashes and control characters escaped.
    mutating func appendQuoted(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            var start = 0
            for (index, byte) in utf8.enumerated() where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<index]))
                start = index + 1
                bytes.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(byte)
                case 0x0A: bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(UInt8(ascii: "t"))
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start...]))
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// A metadata value as JSON. Numbers are written as numbers: values given as Swift integers
    /// or floating-point numbers, and strings that are JSON numbers without leading zeros
    /// (`"1.250"` → `1.250`, but `"007"` and `"1e5x"` stay strings). Booleans given as `Bool`
    /// are written as `true`/`false`; arrays and dictionaries as JSON arrays and objects.
    mutating func appendValue(_ value: Logger.Metadata.Value) {
        switch value {
        case .string(let text):
            if Self.isJSONNumber(text) { append(text) } else { appendQuoted(text) }
        case .stringConvertible(let convertible):
            switch convertible {
            case let number as Double where number.isFinite: append(number.description)
            case let number as Float where number.isFinite: append(number.description)
            case is Int, is Int64, is Int32, is UInt, is UInt64, is UInt32: append(convertible.description)
            case let flag as Bool: append(flag ? "true" : "false")
            default:
                let text = convertible.description
                if Self.isJSONNumber(text) { append(text) } else { appendQuoted(text) }
            }
        case .array(let values):
            bytes.append(UInt8(ascii: "["))
            for (index, element) in values.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                appendValue(element)
            }
            bytes.append(UInt8(ascii: "]"))
        case .dictionary(let dictionary):
            bytes.append(UInt8(ascii: "{"))
            for (index, element) in dictionary.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                appendQuoted(element.key)
                bytes.append(UInt8(ascii: ":"))
                appendValue(element.value)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    /// A metadata value for the text format: quoted when it holds a space or a quote.
    mutating func appendText(_ value: Logger.Metadata.Value) {
        let raw = "\(value)"
        if raw.utf8.contains(where: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\"") }) {
            appendQuoted(raw)
        } else {
            append(raw)
        }
    }

    /// True when `text` is a number in JSON's grammar with no leading zeros (and short enough
    /// to be a measurement rather than an identifier that happens to be digits).
    static func isJSONNumber(_ text: String) -> Bool {
        let utf8 = Array(text.utf8)
        guard !utf8.isEmpty, utf8.count <= 24 else { return false }
        var i = 0
        func digits() -> Int {
            let start = i
            while i < utf8.count, utf8[i] >= UInt8(ascii: "0"), utf8[i] <= UInt8(ascii: "9") { i += 1 }
            return i - start
        }
        if utf8[i] == UInt8(ascii: "-") { i += 1 }
        let intStart = i
        let intDigits = digits()
        guard intDigits > 0, !(intDigits > 1 && utf8[intStart] == UInt8(ascii: "0")) else { return false }
        if i < utf8.count, utf8[i] == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { return false }
        }
        if i < utf8.count, utf8[i] == UInt8(ascii: "e") || utf8[i] == UInt8(ascii: "E") {
            i += 1
            if i < utf8.count, utf8[i] == UInt8(ascii: "+") || utf8[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { return false }
        }
        return i == utf8.count
    }

    /// The current UTC time as `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`, from `clock_gettime` and
    /// `gmtime_r`, written digit by digit.
    mutating func appendTimestamp() {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        appendDigits(Int(parts.tm_year) + 1900, 4)
        bytes.append(UInt8(ascii: "-"))
        appendDigits(Int(parts.tm_mon) + 1, 2)
        bytes.append(UInt8(ascii: "-"))
        appendDigits(Int(parts.tm_mday), 2)
        bytes.append(UInt8(ascii: "T"))
        appendDigits(Int(parts.tm_hour), 2)
        bytes.append(UInt8(ascii: ":"))
        appendDigits(Int(parts.tm_min), 2)
        bytes.append(UInt8(ascii: ":"))
        appendDigits(Int(parts.tm_sec), 2)
        bytes.append(UInt8(ascii: "."))
        appendDigits(Int(now.tv_nsec) / 1_000, 6)
        bytes.append(UInt8(ascii: "Z"))
    }

    private mutating func appendDigits(_ value: Int, _ width: Int) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8((rest / divisor) % 10))
            rest %= divisor
            divisor /= 10
        }
    }
}

/// A buffered, ordered writer of log lines to a file descriptor.
///
/// Lines below `warning` are appended to a buffer that a dedicated thread writes out within
/// `flushDelay` (one `write(2)` for many lines); `warning` and above, and a buffer past
/// `flushBytes`, are written at once by the caller. Writes keep the order lines were appended
/// in. The standard-error sink is flushed at process exit; a crash can lose at most the last
/// `flushDelay` of info and debug lines.
final class LogSink: Sendable {
    /// The sink for standard error, shared by every handler of the process.
    static let standardError: LogSink = {
        let sink = LogSink(descriptor: 2)
        atexit { LogSink.standardError.flush() }
        return sink
    }()

    private let descriptor: Int32
    private let flushDelay: Double
    private let flushBytes: Int
    /// Lines appended and not written yet.
    private let buffer: LockedBox<[UInt8]>
    /// The bytes being written; holding its lock is what keeps writes in order.
    private let spare: LockedBox<[UInt8]>
    /// Signalled when the buffer stops being empty (wakes the flushing thread).
    private let filled = DispatchSemaphore(value: 0)

    /// A sink writing to `descriptor`; starts its flushing thread, which keeps the sink for the
    /// life of the process.
    init(descriptor: Int32, flushDelay: Double = 0.01, flushBytes: Int = 64 * 1024) {
        self.descriptor = descriptor
        self.flushDelay = flushDelay
        self.flushBytes = flushBytes
        var buffer = [UInt8](), spare = [UInt8]()
        buffer.reserveCapacity(flushBytes)
        spare.reserveCapacity(flushBytes)
        self.buffer = LockedBox(buffer)
        self.spare = LockedBox(spare)
        let thread = Thread { self.flushLoop() }
        thread.name = "closebell-log-flush"
        thread.start()
    }

    /// Appends one or more complete lines; `urgent` writes them (and everything before) now.
    func write(_ line: [UInt8], urgent: Bool) {
        let flushBytes = self.flushBytes
        let (wasEmpty, full) = buffer.withLock { buffer -> (Bool, Bool) in
            let wasEmpty = buffer.isEmpty
            buffer.append(contentsOf: line)
            return (wasEmpty, buffer.count >= flushBytes)
        }
        if wasEmpty && !urgent && !full { filled.signal() }
        if urgent || full { flush() }
    }

    /// Writes everything appended so far.
    func flush() {
        let descriptor = self.descriptor, buffer = self.buffer
        spare.withLock { spare in
            buffer.withLock { swap(&$0, &spare) }
            var offset = 0
            while offset < spare.count {
                let written = spare.withUnsafeBytes { systemWrite(descriptor, $0.baseAddress! + offset, $0.count - offset) }
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { break }
                offset += written
            }
            spare.removeAll(keepingCapacity: true)
        }
    }

    private func flushLoop() {
        while true {
            filled.wait()
            // Let more lines gather, then write them with one system call.
            usleep(useconds_t(flushDelay * 1_000_000))
            flush()
        }
    }
}

/// `write(2)`, named apart from `LogSink.write`.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(descriptor, bytes, count)
    #else
    return Darwin.write(descriptor, bytes, count)
    #endif
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
