import Foundation

/// Finds a program on this process's PATH; nil when no folder of it holds an executable `name`.
/// A name containing `/` is returned as it is when it is executable.
public func findOnPath(_ name: String) -> String? {
    let fm = FileManager.default
    if name.contains("/") { return fm.isExecutableFile(atPath: name) ? name : nil }
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
        let candidate = "\(directory)/\(name)"
        if fm.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

/// Finds the PostgreSQL programs (the one place that knows Debian's layout): the client
/// programs that fit a server, and the server programs of a private cluster.
public enum PostgresPrograms {
    /// Debian's folder of PostgreSQL installations, one `N/bin` per major version.
    static let root = "/usr/lib/postgresql"

    /// `$CLOSEBELL_PG_BINDIR` when set and not empty.
    static var configuredDirectory: String? {
        guard let dir = ProcessInfo.processInfo.environment["CLOSEBELL_PG_BINDIR"], !dir.isEmpty else { return nil }
        return dir
    }

    /// The installed major versions that have `program`, lowest first.
    static func installedMajors(having program: String) -> [Int] {
        let fm = FileManager.default
        return ((try? fm.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init)
            .filter { fm.isExecutableFile(atPath: "\(root)/\($0)/bin/\(program)") }.sorted()
    }

    /// The path of `program` (`pg_dump`, `psql`) for a server of `serverVersion` (150018):
    /// `$CLOSEBELL_PG_BINDIR/program`, else `/usr/lib/postgresql/<major>/bin/program`, else the
    /// newest installed newer major (a newer pg_dump reads older servers), else the bare name
    /// (looked up on the PATH).
    public static func path(of program: String, serverVersion: Int) -> String {
        if let dir = configuredDirectory, FileManager.default.isExecutableFile(atPath: "\(dir)/\(program)") {
            return "\(dir)/\(program)"
        }
        let major = serverVersion / 10_000
        let installed = installedMajors(having: program)
        if installed.contains(major) { return "\(root)/\(major)/bin/\(program)" }
        if let newer = installed.filter({ $0 > major }).max() { return "\(root)/\(newer)/bin/\(program)" }
        return program
    }

    /// The path of `program` from `$CLOSEBELL_PG_BINDIR`, else the newest installed major, else
    /// the bare name (looked up on the PATH): for tools that talk to no particular server.
    public static func newest(_ program: String) -> String {
        if let dir = configuredDirectory, FileManager.default.isExecutableFile(atPath: "\(dir)/\(program)") {
            return "\(dir)/\(program)"
        }
        return installedMajors(having: program).last.map { "\(root)/\($0)/bin/\(program)" } ?? program
    }

    /// The folder of the server programs (`initdb`, `pg_ctl`, `postgres`):
    /// `$CLOSEBELL_PG_BINDIR`, else the newest `/usr/lib/postgresql/N/bin`, else the folder of
    /// `initdb` on the PATH; nil when none is installed.
    public static func serverDirectory() -> URL? {
        if let dir = configuredDirectory { return URL(fileURLWithPath: dir) }
        if let newest = installedMajors(having: "initdb").last { return URL(fileURLWithPath: "\(root)/\(newest)/bin") }
        return findOnPath("initdb").map { URL(fileURLWithPath: $0).deletingLastPathComponent() }
    }
}
