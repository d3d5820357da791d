import Foundation

/// Removes secrets from text that may reach logs, errors, job rows, alerts or process
/// arguments: the one redactor of the project, with one placeholder.
///
/// It replaces the given secrets wherever they occur, the password of any
/// `scheme://user:password@` URL, the value of `password=`, `apikey=`, `api_key=`, `token=`,
/// `secret=` (and `:` forms, quoted or not; conninfo strings and query strings), and a
/// `Bearer` token.
public enum Redactor {
    /// What a secret is replaced with.
    public static let placeholder = "********"

    private static let patterns: [(pattern: String, template: String)] = [
        (#"(://[^:/@\s]*):[^@\s]*@"#, "$1:\(placeholder)@"),
        (#"(?i)\b((?:password|passwd|pwd|apikey|api_key|token|secret)\s*[=:]\s*)('(?:[^'\\]|\\.)*'|"[^"]*"|[^\s&]+)"#, "$1\(placeholder)"),
        (#"(?i)\b(bearer\s+)\S+"#, "$1\(placeholder)"),
    ]

    /// `text` with every occurrence of each of `secrets` replaced (longest first), and every
    /// credential-looking part.
    public static func scrub(_ text: String, secrets: [String] = []) -> String {
        var result = text
        for secret in secrets.sorted(by: { $0.count > $1.count }) where !secret.isEmpty {
            result = result.replacingOccurrences(of: secret, with: placeholder)
        }
        for (pattern, template) in patterns {
            guard let expression = try? NSRegularExpression(pattern: pattern) else { continue }
            result = expression.stringByReplacingMatches(
                in: result, range: NSRange(result.startIndex..., in: result), withTemplate: template)
        }
        return result
    }

    /// `scrub(text, secrets:)` cut to `limit` characters (with `…`), for one-line summaries.
    public static func summary(_ text: String, secrets: [String] = [], limit: Int = 300) -> String {
        let result = scrub(text, secrets: secrets)
        return result.count > limit ? String(result.prefix(limit)) + "…" : result
    }

    /// `scheme://host:port/path` of `url`: no user, password, query (where API keys go) or
    /// fragment; `<invalid url>` when it cannot be parsed.
    public static func url(_ url: URL) -> String {
        guard var components = URLComponents(url: url, resolvingAgainstBaseURL: false) else { return "<invalid url>" }
        components.user = nil
        components.password = nil
        components.query = nil
        components.fragment = nil
        return components.string ?? "<invalid url>"
    }

    /// `text` up to its first `?` or `#`: a URL given as text, without its query.
    public static func withoutQuery(_ text: String) -> String {
        String(text.prefix { $0 != "?" && $0 != "#" })
    }

    /// The forms a password can take in program output: as it is, escaped for `.pgpass`,
    /// and percent-encoded as in a URL; longest first.
    public static func forms(ofPassword password: String?) -> [String] {
        guard let password, !password.isEmpty else { return [] }
        var forms: Set<String> = [password, pgpassEscaped(password)]
        if let encoded = password.addingPercentEncoding(withAllowedCharacters: .alphanumerics) { forms.insert(encoded) }
        return forms.sorted { $0.count > $1.count }
    }

    /// A value escaped for a `.pgpass` line (`\` and `:` preceded by a backslash).
    public static func pgpassEscaped(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ":", with: "\\:")
    }
}
