import Foundation

/// The four secrets closebell reads, the usual ways: the variable itself (`DATABASE_URL`), a
/// file named by `<VARIABLE>_FILE` (docker secrets), or a systemd credential
/// (`LoadCredential=database_url:…`, read from `$CREDENTIALS_DIRECTORY`). First found wins, in
/// that order; setting a variable and its `_FILE` both is a configuration error.
///
/// Errors name the variable and the file, never the value.
enum Secrets {
    /// Each secret's variable and its systemd credential name.
    static let all: [(variable: String, credential: String)] = [
        ("DATABASE_URL", "database_url"),
        ("POLYGON_API_KEY", "polygon_api_key"),
        ("CLOSEBELL_TRIGGER_TOKEN", "trigger_token"),
        ("CLOSEBELL_ALERT_WEBHOOK_URL", "alert_webhook_url"),
    ]

    /// The value of one secret, nil when it is set nowhere.
    static func value(
        _ variable: String, credential: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> String? {
        let direct = environment[variable].flatMap { $0.isEmpty ? nil : $0 }
        let file = environment[variable + "_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        if direct != nil, let file {
            throw ConfigError(file: "environment", key: variable, reason: "both \(variable) and \(variable)_FILE (\(file)) are set; keep one")
        }
        if let direct { return direct }
        if let file { return try read(file, key: variable + "_FILE") }
        if let folder = environment["CREDENTIALS_DIRECTORY"], !folder.isEmpty {
            let path = URL(fileURLWithPath: folder).appendingPathComponent(credential).path
            if FileManager.default.fileExists(atPath: path) { return try read(path, key: "credential \(credential)") }
        }
        return nil
    }

    /// This process's environment with every secret filled in from its file or credential, for
    /// the settings that read the environment (Polygon key, trigger token, webhook URL).
    static func environment(_ base: [String: String] = ProcessInfo.processInfo.environment) throws -> [String: String] {
        var result = base
        for secret in all {
            if let value = try value(secret.variable, credential: secret.credential, environment: base) { result[secret.variable] = value }
        }
        return result
    }

    /// Reads a secret file: its text without the trailing newline; empty is an error.
    private static func read(_ path: String, key: String) throws -> String {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigError(file: path, key: key, reason: "cannot read the secret file: \((error as NSError).localizedDescription)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
        guard !text.isEmpty else { throw ConfigError(file: path, key: key, reason: "the secret file is empty") }
        return text
    }
}
