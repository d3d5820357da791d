import Foundation
import Toolkit

/// Decodes one section of the config (the file's mapping with the environment's
/// `CLOSEBELL_<SECTION>_<KEY>` overrides) into a module's settings type, which declares its keys,
/// defaults and checks itself (`Decodable`). This decoder only reads values: it refuses a value of
/// the wrong type with the messages the config file has always used, and records every mapping
/// it opens so that keys nobody read are refused afterwards (`ConfigSection.decode`).
final class ConfigDecoder: Decoder {
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    /// The value at this path; nil when absent.
    let value: Any?
    /// The text of the environment variable that set this value, taken as it is for text.
    let overrideText: String?
    /// The section this node is, when it is one being read key by key.
    let section: ConfigSection?
    /// The section this node's value sits in (for the file name and the dotted path).
    let parent: ConfigSection
    /// Every mapping opened below the section, for the unknown-key check.
    let opened: OpenedSections

    init(codingPath: [any CodingKey], value: Any?, overrideText: String? = nil, section: ConfigSection?, parent: ConfigSection,
         opened: OpenedSections) {
        self.codingPath = codingPath
        self.value = value
        self.overrideText = overrideText
        self.section = section
        self.parent = parent
        self.opened = opened
    }

    /// The error for a value of the wrong type at this path.
    func mismatch(_ type: Any.Type, _ reason: String) -> DecodingError {
        .typeMismatch(type, DecodingError.Context(codingPath: codingPath, debugDescription: reason))
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        if let section { return KeyedDecodingContainer(SectionContainer<Key>(decoder: self, section: section)) }
        guard let mapping = value as? [String: Any] else { throw mismatch([String: Any].self, "expected a mapping of keys") }
        let name = codingPath.last?.stringValue ?? ""
        let nested = ConfigSection(file: parent.file, path: parent.path.isEmpty ? name : "\(parent.path).\(name)", values: mapping)
        opened.sections.append(nested)
        return KeyedDecodingContainer(SectionContainer<Key>(decoder: self, section: nested))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard let list = value as? [Any] else { throw mismatch([Any].self, "expected a list of names, got \(value ?? "nothing")") }
        return ListContainer(decoder: self, list: list)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { ScalarContainer(decoder: self) }
}

/// The mappings a decode opened (sections of sections, such as `worker.time_limits`).
final class OpenedSections {
    var sections: [ConfigSection] = []
}

/// A section read key by key; reading a key marks it used.
private struct SectionContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: ConfigDecoder
    let section: ConfigSection

    var codingPath: [any CodingKey] { decoder.codingPath }
    var allKeys: [Key] { section.allKeyNames().compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { section.raw(key.stringValue) != nil }

    func decodeNil(forKey key: Key) throws -> Bool { section.raw(key.stringValue) == nil }

    func child(_ key: Key) -> ConfigDecoder {
        ConfigDecoder(codingPath: codingPath + [key], value: section.raw(key.stringValue), overrideText: section.overrideText(key.stringValue),
                      section: nil, parent: section, opened: decoder.opened)
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let node = child(key)
        guard let value = node.value else {
            throw DecodingError.keyNotFound(key, DecodingError.Context(codingPath: codingPath, debugDescription: "is required"))
        }
        if T.self == SecretText.self, node.overrideText == nil, !(value is String) {
            throw node.mismatch(T.self, "expected text (the value is not shown: it is a secret)")
        }
        return try T(from: node)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try child(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { try child(key).unkeyedContainer() }

    func superDecoder() throws -> any Decoder { decoder }

    func superDecoder(forKey key: Key) throws -> any Decoder { child(key) }
}

/// A list of names (`vacuum.tables`).
private struct ListContainer: UnkeyedDecodingContainer {
    let decoder: ConfigDecoder
    let list: [Any]
    var currentIndex = 0

    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { list.count }
    var isAtEnd: Bool { currentIndex >= list.count }

    mutating func decodeNil() throws -> Bool { list[currentIndex] is NSNull }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        guard T.self == String.self, let text = list[currentIndex] as? String, let value = text as? T else {
            throw decoder.mismatch(T.self, "expected a list of names, got \(list)")
        }
        currentIndex += 1
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        throw decoder.mismatch([Any].self, "expected a list of names, got \(list)")
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw decoder.mismatch([Any].self, "expected a list of names, got \(list)")
    }

    mutating func superDecoder() throws -> any Decoder { decoder }
}

/// One value: a number, a whole number, text or a flag.
private struct ScalarContainer: SingleValueDecodingContainer {
    let decoder: ConfigDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }
    private var value: Any { decoder.value ?? NSNull() }

    func decodeNil() -> Bool { decoder.value == nil || decoder.value is NSNull }

    func decode(_ type: Bool.Type) throws -> Bool {
        guard let flag = value as? Bool else { throw decoder.mismatch(type, "expected true or false, got \(value)") }
        return flag
    }

    func decode(_ type: String.Type) throws -> String {
        if let text = decoder.overrideText { return text }
        guard let text = value as? String else { throw decoder.mismatch(type, "expected text, got \(value)") }
        return text
    }

    func decode(_ type: Double.Type) throws -> Double {
        switch value {
        case let number as Double: return number
        case let number as Int: return Double(number)
        default: throw decoder.mismatch(type, "expected a number, got \(value)")
        }
    }

    func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }

    func decode(_ type: Int.Type) throws -> Int {
        guard let number = value as? Int else { throw decoder.mismatch(type, "expected a whole number, got \(value)") }
        return number
    }

    func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }

    private func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        guard let number = T(exactly: try decode(Int.self)) else { throw decoder.mismatch(type, "\(value) is out of range") }
        return number
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: decoder) }
}

/// One mapping of the YAML config, read strictly: the settings types read it through
/// `ConfigDecoder` (`decode`), and `finish()` refuses keys nobody read (a misspelt key is an
/// error, not silently ignored).
///
/// `CLOSEBELL_<SECTION>_<KEY>` variables (`EnvironmentOverrides`) override the file's values and
/// go through the same decoder, so they are validated the same way; an error names the variable.
final class ConfigSection {
    /// The file (or `environment`), for errors.
    let file: String
    /// The section's dotted path (`market_data.pacing`; empty at the top level).
    let path: String
    /// The mapping as read from the file.
    let values: [String: Any]
    /// Values from the environment, by key: the variable's name and its text.
    private let overrides: [String: (variable: String, text: String)]
    /// At the top level: the environment's values of each section, by section and key.
    private let sectionOverrides: [String: [String: (variable: String, text: String)]]
    private var used: Set<String> = []

    init(
        file: String, path: String, values: [String: Any], overrides: [String: (variable: String, text: String)] = [:],
        sectionOverrides: [String: [String: (variable: String, text: String)]] = [:]
    ) {
        self.file = file
        self.path = path
        self.values = values
        self.overrides = overrides
        self.sectionOverrides = sectionOverrides
    }

    private func key(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    /// The value of `name` (the environment's, else the file's; nil when absent or null), marked read.
    func raw(_ name: String) -> Any? {
        used.insert(name)
        if let override = overrides[name] { return EnvironmentOverrides.parse(override.text) }
        guard let value = values[name], !(value is NSNull) else { return nil }
        return value
    }

    /// The error for the value of `name`, naming its variable when the environment set it.
    func fail(_ name: String, _ reason: String) -> ConfigError {
        if let override = overrides[name] {
            return ConfigError(file: "environment", key: "\(override.variable) (\(key(name)))", reason: reason)
        }
        return ConfigError(file: file, key: key(name), reason: reason)
    }

    /// A section: the file's mapping and the environment's `CLOSEBELL_<SECTION>_<KEY>` values
    /// for it; nil when neither has any.
    func section(_ name: String) throws -> ConfigSection? {
        let value = raw(name)
        let environment = sectionOverrides[name] ?? [:]
        if value == nil && environment.isEmpty { return nil }
        guard let mapping = (value ?? [String: Any]()) as? [String: Any] else { throw fail(name, "expected a mapping of keys") }
        return ConfigSection(file: file, path: key(name), values: mapping, overrides: environment)
    }

    /// The keys present in the file or the environment, sorted.
    func allKeyNames() -> [String] { Set(values.keys).union(overrides.keys).sorted() }

    /// The environment variable's text for `name`, when one sets it.
    func overrideText(_ name: String) -> String? { overrides[name]?.text }

    /// The section `name` decoded into its module's settings type (`decode`); `fallback` (the
    /// defaults) when neither the file nor the environment sets any of its keys.
    func decode<T: Decodable>(_ name: String, or fallback: T) throws -> T {
        guard let section = try section(name) else { return fallback }
        return try section.decode(T.self)
    }

    /// Decodes this section into a module's settings type (which declares its keys, defaults
    /// and checks), then refuses keys nobody read, here and in the mappings below. A refused
    /// value is reported with its dotted key, or its environment variable.
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let opened = OpenedSections()
        let decoder = ConfigDecoder(codingPath: [], value: values, section: self, parent: self, opened: opened)
        let value: T
        do {
            value = try T(from: decoder)
        } catch let error as DecodingError {
            throw configError(error)
        }
        try finish()
        for nested in opened.sections { try nested.finish() }
        return value
    }

    /// A decoding error as the config error a user sees: the dotted key (or the variable) and why.
    private func configError(_ error: DecodingError) -> ConfigError {
        let (path, reason): ([any CodingKey], String)
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            (path, reason) = (context.codingPath, context.debugDescription)
        case .keyNotFound(let key, let context):
            (path, reason) = (context.codingPath + [key], "is required")
        @unknown default:
            (path, reason) = ([], "\(error)")
        }
        let names = path.map(\.stringValue)
        guard let first = names.first else { return ConfigError(file: file, key: self.path, reason: reason) }
        let dotted = ([self.path] + names).filter { !$0.isEmpty }.joined(separator: ".")
        if let override = overrides[first] {
            return ConfigError(file: "environment", key: "\(override.variable) (\(dotted))", reason: reason)
        }
        return ConfigError(file: file, key: dotted, reason: reason)
    }

    /// Refuses keys that were never read.
    func finish() throws {
        if let unknown = overrides.keys.sorted().first(where: { !used.contains($0) }) {
            throw fail(unknown, "unknown key (misspelt? see the README's configuration table)")
        }
        if let unknown = values.keys.sorted().first(where: { !used.contains($0) }) {
            throw ConfigError(file: file, key: key(unknown), reason: "unknown key (misspelt? see the README's configuration table)")
        }
    }
}
