import Foundation

/// Builds a Prometheus text exposition (format 0.0.4): one `# HELP` and `# TYPE` line per
/// metric family, then its samples. Label values are escaped as the format requires.
struct PrometheusText {
    private(set) var text = ""
    private var declared: Set<String> = []

    /// The content type of the format.
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Declares a family once (`type` is counter, gauge, histogram or untyped).
    mutating func family(_ name: String, type: String, help: String) {
        guard declared.insert(name).inserted else { return }
        text += "# HELP \(name) \(Self.escapeHelp(help))\n# TYPE \(name) \(type)\n"
    }

    /// Appends one sample.
    mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Self.escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " " + Self.format(value) + "\n"
    }

    /// A sample value: integers without a fraction, `+Inf`/`-Inf`/`NaN` spelled as the format wants.
    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    static func escapeLabel(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    static func escapeHelp(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }
}
