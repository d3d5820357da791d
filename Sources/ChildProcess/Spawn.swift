import CChildProcess
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// How a child process ended.
public enum ExitStatus: Sendable, Equatable, Codable, CustomStringConvertible {
    /// It called `exit` with this code.
    case exited(Int32)
    /// A signal ended it (SIGKILL = 9, SIGPIPE = 13, SIGTERM = 15).
    case signaled(Int32)

    /// True for `exit(0)`.
    public var succeeded: Bool { self == .exited(0) }

    /// Decodes a `waitpid` status (the one decoder of the project).
    public init(waitStatus: Int32) {
        let signal = waitStatus & 0x7f
        self = signal == 0 ? .exited((waitStatus >> 8) & 0xff) : .signaled(signal)
    }

    /// The shell's convention: the exit code, or 128 + the signal number.
    public var code: Int32 {
        switch self {
        case .exited(let code): return code
        case .signaled(let signal): return 128 + signal
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): return "exit status \(code)"
        case .signaled(let signal): return "killed by signal \(signal)"
        }
    }
}

/// A program could not be started at all.
public struct SpawnFailure: Error, Sendable, CustomStringConvertible {
    /// The program, as given.
    public let program: String
    /// Why (`ENOENT`: not found, `EACCES`: not executable).
    public let errno: Int32

    /// Creates the failure.
    public init(program: String, errno: Int32) {
        self.program = program
        self.errno = errno
    }

    /// `could not start NAME: REASON`.
    public var message: String { "could not start \(program): \(String(cString: strerror(errno)))" }
    public var description: String { message }
}

/// The one place that starts programs. Every child gets:
/// - descriptors 0, 1 and 2 as given and nothing else (`closefrom(3)` in the child where the C
///   library has it; every descriptor this project opens is close-on-exec besides);
/// - every signal disposition reset to its default and an empty signal mask (the parent
///   ignores SIGPIPE and traps SIGTERM; a child must not inherit either);
/// - exactly the environment given (callers build it with `ChildEnvironment`).
enum Spawner {
    /// Starts `executable` (a path, or a bare name looked up on this process's PATH).
    static func spawn(
        _ executable: String, _ arguments: [String], environment: [String: String],
        stdin: Int32, stdout: Int32, stderr: Int32
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        // ENOSYS: an old C library; close-on-exec descriptors are then the only protection.
        _ = cchild_addclosefrom(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        let configured = cchild_default_attributes(&attributes)
        guard configured == 0 else { throw SpawnFailure(program: executable, errno: configured) }

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        let result = posix_spawnp(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else { throw SpawnFailure(program: executable, errno: result) }
        return pid
    }

    /// Waits for `pid` without a timeout (retrying on EINTR) and decodes its status.
    static func waitBlocking(_ pid: pid_t) -> ExitStatus {
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
        return ExitStatus(waitStatus: raw)
    }

    /// The status of `pid` when it has ended, nil while it runs.
    static func poll(_ pid: pid_t) -> ExitStatus? {
        var raw: Int32 = 0
        return waitpid(pid, &raw, WNOHANG) == pid ? ExitStatus(waitStatus: raw) : nil
    }

    /// /dev/null, opened close-on-exec.
    static func openDevNull() throws -> Int32 {
        let fd = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw SpawnFailure(program: "/dev/null", errno: errno) }
        return fd
    }
}

/// Ignores SIGPIPE in this process, so a write to a closed pipe or socket fails with EPIPE
/// instead of killing it. Children get the default back (see `Spawner`).
public func ignoreBrokenPipes() {
    signal(SIGPIPE, SIG_IGN)
}
