import CLibPQ
import Foundation

/// Runs a program with `posix_spawn` and `waitpid` on a dedicated thread (never on Swift's
/// cooperative pool), its output captured in a temporary file.
enum ChildProcess {
    /// How a child ended.
    struct Outcome: Sendable {
        /// Exit status (128 + signal when killed by a signal).
        var status: Int32
        /// stdout and stderr, interleaved.
        var output: String
    }

    /// Runs `executable` with `arguments` and the current environment changed by `environment`
    /// (values set; nil removes the variable).
    static func run(_ executable: String, _ arguments: [String], environment: [String: String?] = [:]) async throws -> Outcome {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Outcome, Error>) in
            let thread = Thread {
                do { continuation.resume(returning: try runBlocking(executable, arguments, environment: environment)) } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.name = "closebell-child"
            thread.start()
        }
    }

    private static func runBlocking(_ executable: String, _ arguments: [String], environment changes: [String: String?]) throws -> Outcome {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-child-\(UUID().uuidString)").path
        defer { unlink(outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in changes { environment[key] = value }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        let spawned = posix_spawnp(&pid, executable, &actions, nil, argv, envp)
        guard spawned == 0 else { throw ChildProcessError(program: executable, status: nil, output: String(cString: strerror(spawned))) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        let exited = (status & 0x7f) == 0
        return Outcome(status: exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), output: output)
    }

    /// The libpq environment variables equivalent to a connection string, so that a child
    /// program (psql) connects to the same database without the string — and any password in
    /// it — on its command line.
    static func libpqEnvironment(conninfo: String?) throws -> [String: String?] {
        let names: [String: String] = [
            "host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "dbname": "PGDATABASE", "user": "PGUSER",
            "password": "PGPASSWORD", "passfile": "PGPASSFILE", "service": "PGSERVICE", "options": "PGOPTIONS",
            "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
            "connect_timeout": "PGCONNECT_TIMEOUT", "target_session_attrs": "PGTARGETSESSIONATTRS",
            "channel_binding": "PGCHANNELBINDING", "gssencmode": "PGGSSENCMODE",
        ]
        guard let conninfo, !conninfo.isEmpty else { return [:] }
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &errorMessage) else {
            let message = errorMessage.map { String(cString: $0) } ?? "unparsable connection string"
            if let errorMessage { PQfreemem(errorMessage) }
            throw ChildProcessError(program: "psql", status: nil, output: "bad connection string: \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        defer { PQconninfoFree(options) }
        var environment: [String: String?] = [:]
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val, let name = names[String(cString: keyword)] {
                environment[name] = String(cString: value)
            }
            option += 1
        }
        return environment
    }
}

/// A child program failed to start or exited non-zero.
public struct ChildProcessError: Error, CustomStringConvertible {
    /// The program.
    public let program: String
    /// Its exit status, nil when it did not start.
    public let status: Int32?
    /// What it printed (last part).
    public let output: String
    public var description: String {
        let tail = output.trimmingCharacters(in: .whitespacesAndNewlines).suffix(1000)
        if let status { return "\(program) exited with status \(status): \(tail)" }
        return "\(program) could not start: \(tail)"
    }
}
