import Foundation

/// A program started with `posix_spawn`, its output (stdout and stderr together) going to a
/// file or inherited, reaped with `waitpid`.
///
/// Foundation's `Process` is not used: it can miss the exit of a child that leaves a daemon
/// behind (`pg_ctl start`), and a pipe to such a child never reaches end-of-file. Waiting
/// blocks the calling thread, so async code uses `run(…) async`, which waits on a thread of its own.
public final class ChildProcess: @unchecked Sendable {
    /// The child's process id.
    public let pid: pid_t
    /// The program, as given.
    public let program: String
    private let lock = NSLock()
    private var status: Int32?

    private init(pid: pid_t, program: String) {
        self.pid = pid
        self.program = program
    }

    /// Starts `program` (looked up on the PATH unless it contains a `/`) with `arguments`.
    /// The environment is this process's, changed by `environment` (a nil value removes the
    /// variable). Output goes to `outputPath` (appended) or is inherited; stdin is /dev/null.
    public static func spawn(
        _ program: String, _ arguments: [String], environment changes: [String: String?] = [:], outputPath: String? = nil
    ) throws -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let outputPath {
            posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in changes { environment[key] = value }
        let argv = ([program] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        let result = posix_spawnp(&pid, program, &actions, nil, argv, envp)
        guard result == 0 else { throw ChildProcessError(program: program, status: nil, output: String(cString: strerror(result))) }
        return ChildProcess(pid: pid, program: program)
    }

    /// Runs `program` to completion and returns its exit status and output (blocking).
    public static func run(_ program: String, _ arguments: [String], environment: [String: String?] = [:]) throws -> (status: Int32, output: String) {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-child-\(UUID().uuidString)").path
        defer { unlink(outputPath) }
        let child = try spawn(program, arguments, environment: environment, outputPath: outputPath)
        let status = child.wait()
        return (status, (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
    }

    /// Runs `program` to completion on a thread of its own (never blocking Swift's cooperative pool).
    public static func run(_ program: String, _ arguments: [String], environment: [String: String?] = [:]) async throws -> (status: Int32, output: String) {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<(status: Int32, output: String), Error>) in
            let thread = Thread {
                do {
                    let result: (status: Int32, output: String) = try run(program, arguments, environment: environment)
                    continuation.resume(returning: result)
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.name = "closebell-child"
            thread.start()
        }
    }

    /// Sends a signal.
    public func signal(_ number: Int32) { kill(pid, number) }

    /// Waits for the exit; returns the exit status (128 + signal number when killed).
    @discardableResult
    public func wait() -> Int32 {
        if let known = lock.withLock({ status }) { return known }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
        return record(raw)
    }

    /// Waits up to `seconds`; returns the exit status, or nil when it is still running.
    public func wait(seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if let known = lock.withLock({ status }) { return known }
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid { return record(raw) }
            usleep(10_000)
        } while Date() < deadline
        return nil
    }

    private func record(_ raw: Int32) -> Int32 {
        let value = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        lock.withLock { status = value }
        return value
    }
}

/// A child program failed to start or exited non-zero.
public struct ChildProcessError: Error, CustomStringConvertible {
    /// The program.
    public let program: String
    /// Its exit status, nil when it did not start.
    public let status: Int32?
    /// What it printed (or why it could not start).
    public let output: String

    /// Creates the error.
    public init(program: String, status: Int32?, output: String) {
        self.program = program
        self.status = status
        self.output = output
    }

    public var description: String {
        let tail = output.trimmingCharacters(in: .whitespacesAndNewlines).suffix(1000)
        if let status { return "\(program) exited with status \(status): \(tail)" }
        return "\(program) could not start: \(tail)"
    }
}
