import Foundation

/// Environments for child programs, built on purpose rather than copied from this process.
///
/// closebell's own environment holds secrets (`DATABASE_URL`, `POLYGON_API_KEY`, the trigger
/// token, the webhook URL). A child sees one only when the caller adds it by name (the demo
/// hands its workers their database URL); `pg_dump`, `psql`, the compressor, `initdb` and
/// `pg_ctl` never do.
public enum ChildEnvironment {
    /// Variables no child inherits: the secrets closebell reads, their `_FILE` forms, their
    /// `CLOSEBELL_<SECTION>_<KEY>` forms, and systemd's credentials folder.
    public static let secretNames: Set<String> = {
        let secrets = [
            "DATABASE_URL", "POLYGON_API_KEY", "MASSIVE_API_KEY", "CLOSEBELL_TRIGGER_TOKEN",
            "CLOSEBELL_ALERT_WEBHOOK_URL", "CLOSEBELL_HTTP_TRIGGER_TOKEN", "CLOSEBELL_ALERTS_WEBHOOK_URL",
        ]
        return Set(secrets + secrets.map { $0 + "_FILE" } + ["CREDENTIALS_DIRECTORY"])
    }()

    /// The variables every program may rely on, copied when set: `PATH`, `HOME`, `USER`,
    /// `LOGNAME`, `TMPDIR`, `TZ`, `LANG` and the `LC_*` locale variables.
    public static func base(from parent: [String: String] = ProcessInfo.processInfo.environment) -> [String: String] {
        let names: Set<String> = ["PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "LANG", "LANGUAGE"]
        var environment = parent.filter { names.contains($0.key) || $0.key.hasPrefix("LC_") }
        if environment["PATH"] == nil { environment["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        return environment
    }

    /// The environment of a PostgreSQL client program: `base`, this process's `PG*` variables
    /// (service file, SSL settings, host), then `connection` (keywords as `PG*` variables, e.g.
    /// `PGHOST`, `PGDATABASE`), and the password only as `PGPASSFILE` when `passfile` is given
    /// (`PGPASSWORD` would win over the file, so it is removed then).
    public static func postgres(
        connection: [String: String] = [:], passfile: String? = nil,
        from parent: [String: String] = ProcessInfo.processInfo.environment
    ) -> [String: String] {
        var environment = base(from: parent)
        for (key, value) in parent where key.hasPrefix("PG") { environment[key] = value }
        for (key, value) in connection { environment[key] = value }
        if let passfile {
            environment["PGPASSWORD"] = nil
            environment["PGPASSFILE"] = passfile
        }
        return withoutSecrets(environment)
    }

    /// This process's environment without the secrets, changed by `changes` (a nil value
    /// removes a variable; a secret named in `changes` is passed, on purpose).
    public static func inherited(
        _ changes: [String: String?] = [:], from parent: [String: String] = ProcessInfo.processInfo.environment
    ) -> [String: String] {
        var environment = withoutSecrets(parent)
        for (key, value) in changes { environment[key] = value }
        return environment
    }

    /// `environment` without the variables of `secretNames`.
    public static func withoutSecrets(_ environment: [String: String]) -> [String: String] {
        environment.filter { !secretNames.contains($0.key) }
    }
}
