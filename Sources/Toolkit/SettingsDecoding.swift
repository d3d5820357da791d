import Foundation

/// A key of a config section whose keys are data (task names, labels, table names).
public struct SettingKey: CodingKey, Sendable {
    /// The key's name.
    public var stringValue: String
    /// None: config keys are names.
    public var intValue: Int? { nil }
    /// A key named `stringValue`.
    public init(stringValue: String) { self.stringValue = stringValue }
    /// Config keys are never positions.
    public init?(intValue: Int) { nil }
}

/// Text that must never appear in an error: a config decoder reports a wrong value of this
/// type without showing it.
public struct SecretText: Decodable, Sendable, Equatable {
    /// The secret.
    public let value: String
    /// Reads a text value.
    public init(from decoder: any Decoder) throws {
        value = try decoder.singleValueContainer().decode(String.self)
    }
}

/// What each module's settings type uses to decode its own config section: the key names are
/// its `CodingKeys`, the defaults its properties' initial values, and a refused value names the
/// key by its dotted path (`worker.lease_seconds`), which the decoder knows.
extension KeyedDecodingContainer {
    /// The value of `key`, or `current` (the default) when the key is absent; a value below
    /// `minimum` is refused.
    public func setting<T: Decodable & Comparable>(_ key: Key, _ current: T, min minimum: T? = nil) throws -> T {
        guard let value = try decodeIfPresent(T.self, forKey: key) else { return current }
        if let minimum, value < minimum { throw invalid(key, "must be at least \(minimum), got \(value)") }
        return value
    }

    /// Like `setting`, for an optional setting whose default is none.
    public func setting<T: Decodable & Comparable>(_ key: Key, _ current: T?, min minimum: T? = nil) throws -> T? {
        guard let value = try decodeIfPresent(T.self, forKey: key) else { return current }
        if let minimum, value < minimum { throw invalid(key, "must be at least \(minimum), got \(value)") }
        return value
    }

    /// A setting without a range (a list, a mapping), or `current` when the key is absent.
    public func setting<T: Decodable>(_ key: Key, default current: T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? current
    }

    /// Visits the entries of the mapping at `key` whose keys are data (task names, labels,
    /// table names) in key order, each with the mapping's container; nothing when `key` is absent.
    public func forEachEntry(of key: Key, _ body: (KeyedDecodingContainer<SettingKey>, SettingKey) throws -> Void) throws {
        guard contains(key) else { return }
        let entries = try nestedContainer(keyedBy: SettingKey.self, forKey: key)
        for entry in entries.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) { try body(entries, entry) }
    }

    /// True when `key` is given as `off` or `false`: a check turned off.
    public func isOff(_ key: Key) -> Bool {
        guard contains(key), let value = try? superDecoder(forKey: key).singleValueContainer() else { return false }
        if let flag = try? value.decode(Bool.self) { return !flag }
        return (try? value.decode(String.self))?.lowercased() == "off"
    }

    /// The error for a value of `key` that cannot be used, saying why.
    public func invalid(_ key: Key, _ reason: String) -> DecodingError {
        .dataCorrupted(DecodingError.Context(codingPath: codingPath + [key], debugDescription: reason))
    }
}

extension DecodingError {
    /// The error for a setting at `path` (a section's coding path plus the key's name) that cannot be used.
    public static func invalidSetting(_ path: [any CodingKey], _ key: String, _ reason: String) -> DecodingError {
        .dataCorrupted(Context(codingPath: path + [SettingKey(stringValue: key)], debugDescription: reason))
    }

    /// The error for a section's own check (a `validate()` that names its key, e.g.
    /// `retention.batch_size`): the key below the section at `path`, whose own name `section` is
    /// dropped from the front of `dottedKey` when it is there.
    public static func invalidSetting(_ path: [any CodingKey], section: String, dottedKey: String, _ reason: String) -> DecodingError {
        var parts = dottedKey.split(separator: ".").map(String.init)
        if parts.first == section { parts.removeFirst() }
        guard let last = parts.popLast() else { return .dataCorrupted(Context(codingPath: path, debugDescription: reason)) }
        return invalidSetting(path + parts.map { SettingKey(stringValue: $0) }, last, reason)
    }
}
