import Foundation
import Toolkit

/// A Swift value that can be sent to PostgreSQL as a query parameter in text format.
public protocol PostgresBindable: Sendable {
    /// The value's PostgreSQL text representation, or nil for SQL NULL.
    var postgresText: String? { get }
}

/// A Swift type that can be read from a PostgreSQL text-format value.
public protocol PostgresDecodable: Sendable {
    /// Parses the text the server sent; returns nil when the text is not a valid value.
    init?(postgresText: String)
}

extension String: PostgresBindable, PostgresDecodable {
    public var postgresText: String? { self }
    public init?(postgresText: String) { self = postgresText }
}

extension Substring: PostgresBindable {
    public var postgresText: String? { String(self) }
}

extension Int: PostgresBindable, PostgresDecodable {
    public var postgresText: String? { String(self) }
    public init?(postgresText: String) { self.init(postgresText) }
}

extension Int64: PostgresBindable, PostgresDecodable {
    public var postgresText: String? { String(self) }
    public init?(postgresText: String) { self.init(postgresText) }
}

extension Int32: PostgresBindable, PostgresDecodable {
    public var postgresText: String? { String(self) }
    public init?(postgresText: String) { self.init(postgresText) }
}

extension Double: PostgresBindable, PostgresDecodable {
    public var postgresText: String? {
        if isNaN { return "NaN" }
        if isInfinite { return self > 0 ? "Infinity" : "-Infinity" }
        return String(self)
    }
    public init?(postgresText: String) {
        switch postgresText {
        case "NaN": self = .nan
        case "Infinity": self = .infinity
        case "-Infinity": self = -.infinity
        default: self.init(postgresText)
        }
    }
}

extension Decimal: PostgresBindable, PostgresDecodable {
    public var postgresText: String? { "\(self)" }
    public init?(postgresText: String) {
        guard let value = Decimal(string: postgresText, locale: Locale(identifier: "en_US_POSIX")) else { return nil }
        self = value
    }
}

extension Bool: PostgresBindable, PostgresDecodable {
    public var postgresText: String? { self ? "t" : "f" }
    public init?(postgresText: String) {
        switch postgresText {
        case "t", "true": self = true
        case "f", "false": self = false
        default: return nil
        }
    }
}

extension Optional: PostgresBindable where Wrapped: PostgresBindable {
    public var postgresText: String? { self?.postgresText }
}

extension Array: PostgresBindable where Element: PostgresBindable {
    /// A PostgreSQL array literal (`{"a","b",NULL}`), usable as `$1::text[]` or `$1::bigint[]`.
    public var postgresText: String? {
        let items = map { element -> String in
            guard let text = element.postgresText else { return "NULL" }
            let escaped = text.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\"", with: "\\\"")
            return "\"\(escaped)\""
        }
        return "{" + items.joined(separator: ",") + "}"
    }
}

extension Date: PostgresBindable, PostgresDecodable {
    /// UTC timestamp with microseconds, for `timestamptz` parameters.
    public var postgresText: String? {
        let seconds = timeIntervalSince1970
        var whole = seconds.rounded(.down)
        var micros = Int(((seconds - whole) * 1_000_000).rounded())
        if micros == 1_000_000 { whole += 1; micros = 0 }
        var tm = tm()
        var t = time_t(whole)
        gmtime_r(&t, &tm)
        return String(
            format: "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1,
            Int(tm.tm_mday), Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec), micros)
    }

    /// Parses the ISO text of a `timestamptz` (`2026-11-22 10:30:39.123456+00`, any offset),
    /// a `timestamp` (taken as UTC) or a `date` (UTC midnight).
    public init?(postgresText: String) {
        let utf8 = Array(postgresText.utf8)
        func number(_ start: Int, _ count: Int) -> Int? {
            guard start + count <= utf8.count else { return nil }
            var value = 0
            for byte in utf8[start..<start + count] {
                guard byte >= 48, byte <= 57 else { return nil }
                value = value * 10 + Int(byte - 48)
            }
            return value
        }
        guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2) else { return nil }
        var hour = 0, minute = 0, second = 0
        var fraction = 0.0
        var offsetSeconds = 0
        var index = 10
        if utf8.count > 10 {
            guard let h = number(11, 2), let m = number(14, 2), let s = number(17, 2) else { return nil }
            hour = h; minute = m; second = s
            index = 19
            if index < utf8.count, utf8[index] == UInt8(ascii: ".") {
                var scale = 0.1
                index += 1
                while index < utf8.count, utf8[index] >= 48, utf8[index] <= 57 {
                    fraction += Double(utf8[index] - 48) * scale
                    scale /= 10
                    index += 1
                }
            }
            if index < utf8.count, utf8[index] == UInt8(ascii: "+") || utf8[index] == UInt8(ascii: "-") {
                let sign = utf8[index] == UInt8(ascii: "+") ? 1 : -1
                guard let oh = number(index + 1, 2) else { return nil }
                var om = 0, os = 0
                if let m = number(index + 4, 2), utf8[index + 3] == UInt8(ascii: ":") { om = m }
                if let s = number(index + 7, 2), index + 6 < utf8.count, utf8[index + 6] == UInt8(ascii: ":") { os = s }
                offsetSeconds = sign * (oh * 3600 + om * 60 + os)
            }
        }
        guard let days = CivilDate(year: year, month: month, day: day)?.dayNumber else { return nil }
        let epoch = Double(days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds) + fraction
        self = Date(timeIntervalSince1970: epoch)
    }
}

/// A JSON document sent as a `json`/`jsonb` parameter or read from such a column, kept as text.
public struct PostgresJSON: PostgresBindable, PostgresDecodable, Equatable {
    /// The JSON text.
    public var text: String
    /// Wraps JSON text without checking it (the server checks it on cast).
    public init(text: String) { self.text = text }
    /// Encodes a value with `JSONEncoder` (keys sorted, so the text is stable).
    public init<T: Encodable>(encoding value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        self.text = String(decoding: try encoder.encode(value), as: UTF8.self)
    }
    public init?(postgresText: String) { self.text = postgresText }
    public var postgresText: String? { text }
    /// Decodes the JSON text into a `Decodable` type.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(text.utf8))
    }
}
