import Foundation
import HTTPClient
import HTTPServer
import JobQueue
import Logging
import PostgresClient
import XCTest

/// A running worker for a test, stopped by `stop()`.
final class RunningWorker: @unchecked Sendable {
    let worker: Worker
    private let task: Task<Void, Error>

    init(url: String, id: String) {
        var config = WorkerConfiguration(workerID: id)
        config.pollSeconds = 0.2
        config.rescueSeconds = 0.5
        config.leaseSeconds = 10
        config.graceSeconds = 1
        config.reconnectMaxSeconds = 0.5
        config.retryBaseSeconds = 0
        config.retryMaxSeconds = 0
        let worker = Worker(conninfo: url, registry: TaskRegistry([NoopTask()]), configuration: config, logger: Logger(label: "test.worker"))
        self.worker = worker
        task = Task { try await worker.run() }
    }

    func stop() async {
        worker.requestStop()
        _ = await task.result
    }
}

/// Requests received by a local webhook receiver.
final class Received: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [(path: String, body: Data)] = []
    func append(_ path: String, _ body: Data) { lock.withLock { items.append((path, body)) } }
    var all: [(path: String, body: Data)] { lock.withLock { items } }
}

enum TestHTTP {
    static let client = HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: 5, timeout: 20))

    static func send(_ method: String, _ url: URL, headers: [(name: String, value: String)] = []) async throws -> (status: Int, text: String) {
        let response = try await client.send(HTTPRequest(method: method, url: url, headers: headers))
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    static func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not a JSON object: \(text)")
    }
}

/// A strict parser of the Prometheus text format 0.0.4, enough to check what /metrics serves.
struct PrometheusSample: Equatable {
    var name: String
    var labels: [String: String]
    var value: Double
}

enum PrometheusParser {
    struct Failure: Error, CustomStringConvertible {
        let line: String
        let reason: String
        var description: String { "\(reason): \(line)" }
    }

    static func parse(_ text: String) throws -> (samples: [PrometheusSample], types: [String: String], helps: Set<String>) {
        var samples: [PrometheusSample] = []
        var types: [String: String] = [:]
        var helps: Set<String> = []
        guard text.hasSuffix("\n") else { throw Failure(line: "", reason: "the exposition must end with a newline") }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) {
            if line.hasPrefix("# HELP ") {
                let parts = line.dropFirst(7).split(separator: " ", maxSplits: 1)
                guard parts.count == 2, isName(String(parts[0])) else { throw Failure(line: line, reason: "bad HELP") }
                guard helps.insert(String(parts[0])).inserted else { throw Failure(line: line, reason: "duplicate HELP") }
                continue
            }
            if line.hasPrefix("# TYPE ") {
                let parts = line.dropFirst(7).split(separator: " ")
                guard parts.count == 2, isName(String(parts[0])),
                      ["counter", "gauge", "histogram", "summary", "untyped"].contains(String(parts[1])) else { throw Failure(line: line, reason: "bad TYPE") }
                guard types[String(parts[0])] == nil else { throw Failure(line: line, reason: "duplicate TYPE") }
                types[String(parts[0])] = String(parts[1])
                continue
            }
            if line.hasPrefix("#") { continue }
            guard !line.isEmpty else { throw Failure(line: line, reason: "empty line") }
            samples.append(try sample(line))
        }
        return (samples, types, helps)
    }

    static func isName(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, CharacterSet.letters.contains(first) || first == "_" || first == ":" else { return false }
        return text.unicodeScalars.allSatisfy { ($0.isASCII && CharacterSet.alphanumerics.contains($0)) || $0 == "_" || $0 == ":" }
    }

    static func sample(_ line: String) throws -> PrometheusSample {
        var chars = Array(line)
        var i = 0
        var name = ""
        while i < chars.count, chars[i] != "{", chars[i] != " " { name.append(chars[i]); i += 1 }
        guard isName(name) else { throw Failure(line: line, reason: "bad metric name") }
        var labels: [String: String] = [:]
        if i < chars.count, chars[i] == "{" {
            i += 1
            while i < chars.count, chars[i] != "}" {
                var key = ""
                while i < chars.count, chars[i] != "=" { key.append(chars[i]); i += 1 }
                guard isName(key), i + 1 < chars.count, chars[i + 1] == "\"" else { throw Failure(line: line, reason: "bad label") }
                i += 2
                var value = ""
                while i < chars.count, chars[i] != "\"" {
                    if chars[i] == "\\", i + 1 < chars.count {
                        i += 1
                        value.append(chars[i] == "n" ? "\n" : chars[i])
                    } else {
                        value.append(chars[i])
                    }
                    i += 1
                }
                guard i < chars.count else { throw Failure(line: line, reason: "unterminated label value") }
                i += 1
                labels[key] = value
                if i < chars.count, chars[i] == "," { i += 1 }
            }
            guard i < chars.count else { throw Failure(line: line, reason: "unterminated labels") }
            i += 1
        }
        guard i < chars.count, chars[i] == " " else { throw Failure(line: line, reason: "no value") }
        chars = Array(chars[(i + 1)...])
        let fields = String(chars).split(separator: " ")
        guard (1...2).contains(fields.count) else { throw Failure(line: line, reason: "bad value") }
        let text = String(fields[0])
        let value: Double
        switch text {
        case "+Inf": value = .infinity
        case "-Inf": value = -.infinity
        case "NaN": value = .nan
        default:
            guard let parsed = Double(text) else { throw Failure(line: line, reason: "value is not a number") }
            value = parsed
        }
        return PrometheusSample(name: name, labels: labels, value: value)
    }
}

/// An RFC 4180 CSV parser (quoted fields, doubled quotes, CRLF or LF record ends).
enum CSVParser {
    struct Failure: Error { let reason: String }

    static func parse(_ text: String) throws -> [[String]] {
        var records: [[String]] = []
        var record: [String] = []
        var field = ""
        var inQuotes = false
        var fieldWasQuoted = false
        var chars = Array(text)
        chars.append("\n")
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if inQuotes {
                if c == "\"" {
                    if i + 1 < chars.count, chars[i + 1] == "\"" { field.append("\""); i += 1 } else { inQuotes = false }
                } else {
                    field.append(c)
                }
            } else if c == "\"" {
                guard field.isEmpty, !fieldWasQuoted else { throw Failure(reason: "quote inside an unquoted field") }
                inQuotes = true
                fieldWasQuoted = true
            } else if c == "," {
                record.append(field); field = ""; fieldWasQuoted = false
            } else if c == "\r\n" || c == "\n" || c == "\r" {
                if !(record.isEmpty && field.isEmpty && !fieldWasQuoted) {
                    record.append(field)
                    records.append(record)
                }
                record = []; field = ""; fieldWasQuoted = false
            } else {
                guard !fieldWasQuoted else { throw Failure(reason: "text after a closing quote") }
                field.append(c)
            }
            i += 1
        }
        guard !inQuotes else { throw Failure(reason: "unterminated quoted field") }
        return records
    }
}

/// A Bool behind a lock.
final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Bool
    init(_ value: Bool) { stored = value }
    var value: Bool {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
