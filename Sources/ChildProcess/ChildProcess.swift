import CChildProcess
import Foundation
import Toolkit

#if canImport(Glibc)
import Glibc
#endif

/// A program started by `Spawner` (posix_spawn), its output (stdout and stderr together) going
/// to a file or inherited, reaped with `waitpid`.
///
/// Foundation's `Process` is not used: it can miss the exit of a child that leaves a daemon
/// behind (`pg_ctl start`), and a pipe to such a child never reaches end-of-file. Blocking
/// waits block the calling thread; async code uses `run(…) async` or `waitUntilExit(killGrace:)`,
/// which wait on a thread of their own and stop the child when the task is cancelled.
public final class ChildProcess: Sendable {
    /// The child's process id.
    public let pid: pid_t
    /// The program, as given.
    public let program: String
    /// The reaped status, once known.
    private let status = LockedBox<ExitStatus?>(nil)

    private init(pid: pid_t, program: String) {
        self.pid = pid
        self.program = program
    }

    /// Starts `program` (looked up on the PATH unless it contains a `/`) with `arguments`.
    /// The environment is `environment` when given (build it with `ChildEnvironment`), else
    /// this process's without its secrets (`ChildEnvironment.inherited`), changed by `changes`
    /// (a nil value removes a variable). Output goes to `outputPath` (appended) or is
    /// inherited; stdin is /dev/null.
    public static func spawn(
        _ program: String, _ arguments: [String], environment changes: [String: String?] = [:],
        replacing environment: [String: String]? = nil, outputPath: String? = nil
    ) throws -> ChildProcess {
        let devNull = try Spawner.openDevNull()
        defer { close(devNull) }
        var output: Int32 = -1
        if let outputPath {
            output = open(outputPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            guard output >= 0 else { throw SpawnFailure(program: outputPath, errno: errno) }
        }
        defer { if output >= 0 { close(output) } }
        var chosen = environment ?? ChildEnvironment.inherited()
        for (key, value) in changes { chosen[key] = value }
        let pid = try Spawner.spawn(
            program, arguments, environment: chosen,
            stdin: devNull, stdout: output >= 0 ? output : 1, stderr: output >= 0 ? output : 2)
        return ChildProcess(pid: pid, program: program)
    }

    /// Runs `program` to completion and returns its exit status (128 + the signal number when
    /// killed) and output (blocking). `environment` as in `spawn`.
    public static func run(
        _ program: String, _ arguments: [String], environment: [String: String?] = [:],
        replacing base: [String: String]? = nil
    ) throws -> (status: Int32, output: String) {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-child-\(UUID().uuidString)").path
        defer { unlink(outputPath) }
        let child = try spawn(program, arguments, environment: environment, replacing: base, outputPath: outputPath)
        let status = child.wait()
        return (status, (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
    }

    /// Runs `program` to completion on a thread of its own (never blocking Swift's cooperative
    /// pool). When the task is cancelled the program gets SIGTERM, then SIGKILL after
    /// `killGrace` seconds, and `CancellationError` is thrown once it has exited.
    public static func run(
        _ program: String, _ arguments: [String], environment: [String: String?] = [:],
        replacing base: [String: String]? = nil, killGrace: Double = 5
    ) async throws -> (status: Int32, output: String) {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-child-\(UUID().uuidString)").path
        defer { unlink(outputPath) }
        let child = try spawn(program, arguments, environment: environment, replacing: base, outputPath: outputPath)
        let status = await child.waitUntilExit(killGrace: killGrace)
        if Task.isCancelled { throw CancellationError() }
        return (status.code, (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
    }

    /// Sends a signal.
    public func signal(_ number: Int32) { kill(pid, number) }

    /// Waits for the exit (blocking); returns the exit status (128 + signal number when killed).
    @discardableResult
    public func wait() -> Int32 {
        if let known = status.value { return known.code }
        return record(Spawner.waitBlocking(pid)).code
    }

    /// Waits up to `seconds` (blocking); returns the exit status, or nil while it still runs.
    public func wait(seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if let known = status.value { return known.code }
            if let ended = Spawner.poll(pid) { return record(ended).code }
            usleep(10_000)
        } while Date() < deadline
        return nil
    }

    /// Waits for the exit on a thread of its own. When the calling task is cancelled, the
    /// child gets SIGTERM, then SIGKILL after `killGrace` seconds; the wait still ends only
    /// once it has exited (no orphan is left behind).
    @discardableResult
    public func waitUntilExit(killGrace: Double = 5) async -> ExitStatus {
        let stop = LockedBox(false)
        return await ThreadExecutor.runDetached(name: "closebell-child", {
            self.waitStopping(when: { stop.value }, killGrace: killGrace)
        }, onCancel: {
            stop.set(true)
        })
    }

    /// Polls for the exit; once `shouldStop` turns true sends SIGTERM, then SIGKILL after `killGrace`.
    private func waitStopping(when shouldStop: () -> Bool, killGrace: Double) -> ExitStatus {
        var termSent: Date?
        var killSent = false
        while true {
            if let known = status.value { return known }
            if let ended = Spawner.poll(pid) { return record(ended) }
            if termSent == nil, shouldStop() {
                termSent = Date()
                kill(pid, SIGTERM)
            } else if let termSent, !killSent, Date().timeIntervalSince(termSent) > killGrace {
                killSent = true
                kill(pid, SIGKILL)
            }
            usleep(10_000)
        }
    }

    private func record(_ ended: ExitStatus) -> ExitStatus {
        status.set(ended)
        return ended
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
