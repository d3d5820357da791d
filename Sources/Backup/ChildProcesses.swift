import CBackupSupport
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

    init(waitStatus: Int32) {
        let signal = waitStatus & 0x7f
        self = signal == 0 ? .exited((waitStatus >> 8) & 0xff) : .signaled(signal)
    }

    public var description: String {
        switch self {
        case .exited(let code): return "exit status \(code)"
        case .signaled(let signal): return "killed by signal \(signal)"
        }
    }
}

/// One program of a pipeline.
struct ChildCommand: Sendable {
    /// A path, or a bare name looked up on the PATH.
    var executable: String
    var arguments: [String]
    /// The child's complete environment.
    var environment: [String: String]

    /// The program's file name, for messages.
    var name: String { (executable as NSString).lastPathComponent }
}

/// How one program of a pipeline ended, with the end of what it wrote to stderr.
struct ChildOutcome: Sendable {
    let name: String
    let status: ExitStatus
    let stderrTail: String
}

/// How a whole pipeline ended.
struct PipelineOutcome: Sendable {
    let children: [ChildOutcome]
    /// The deadline passed and the children were killed.
    let timedOut: Bool
    /// Cancellation was requested and the children were killed.
    let cancelled: Bool
}

/// A program could not be started at all.
struct SpawnFailure: Error, Sendable {
    let program: String
    let errno: Int32
    var message: String { "could not start \(program): \(String(cString: strerror(errno)))" }
}

/// Receives the last program's stdout, chunk by chunk, on the pipeline's thread.
final class OutputSink: @unchecked Sendable {
    /// Keeps the last `tailLimit` bytes and counts all of them. Only the pipeline's thread
    /// writes; readers look after the pipeline finished.
    private(set) var tail = [UInt8]()
    private(set) var totalBytes: Int64 = 0
    private let tailLimit: Int

    init(tailLimit: Int) { self.tailLimit = tailLimit }

    func consume(_ buffer: UnsafeRawBufferPointer) {
        totalBytes += Int64(buffer.count)
        if buffer.count >= tailLimit {
            tail = Array(buffer.suffix(tailLimit))
        } else {
            tail.append(contentsOf: buffer)
            if tail.count > tailLimit { tail.removeFirst(tail.count - tailLimit) }
        }
    }
}

/// A flag raised by Swift task cancellation, read by the pipeline's thread.
private final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var raised = false
    var isRaised: Bool { lock.withLock { raised } }
    func raise() { lock.withLock { raised = true } }
}

/// Runs programs connected by OS pipes (`a | b | c`) with `posix_spawn`, waiting for them on a
/// dedicated thread (never on Swift's cooperative pool). Data flows from program to program
/// through the kernel; only the last program's output can be handed to Swift (`sink`).
enum Pipeline {
    /// Runs `commands` as a pipeline. `stdin`/`stdout` are descriptors the first/last program
    /// gets (nil: /dev/null, or with `sink`, a pipe read by this process). Each program's stderr
    /// goes to an anonymous temporary file whose last 4 kB are returned. When `timeout` passes
    /// or `isCancelled` turns true (or the calling task is cancelled), the programs get
    /// SIGTERM, then SIGKILL after `killGrace` seconds.
    static func run(
        _ commands: [ChildCommand], stdin: Int32? = nil, stdout: Int32? = nil, sink: OutputSink? = nil,
        timeout: Double?, killGrace: Double, isCancelled: @escaping @Sendable () -> Bool = { false }
    ) async throws -> PipelineOutcome {
        let stop = StopFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<PipelineOutcome, Error>) in
                let thread = Thread {
                    do {
                        let outcome = try runBlocking(
                            commands, stdin: stdin, stdout: stdout, sink: sink, timeout: timeout, killGrace: killGrace,
                            isCancelled: { stop.isRaised || isCancelled() })
                        continuation.resume(returning: outcome)
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
                thread.name = "closebell-pipeline"
                thread.start()
            }
        } onCancel: {
            stop.raise()
        }
    }

    /// The blocking body of `run`, on the pipeline's own thread.
    private static func runBlocking(
        _ commands: [ChildCommand], stdin: Int32?, stdout: Int32?, sink: OutputSink?,
        timeout: Double?, killGrace: Double, isCancelled: () -> Bool
    ) throws -> PipelineOutcome {
        precondition(!commands.isEmpty)
        var toClose: [Int32] = []
        defer { toClose.forEach { close($0) } }
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard devNull >= 0 else { throw SpawnFailure(program: "/dev/null", errno: errno) }
        toClose.append(devNull)

        // Pipes between neighbours, plus one to us when output is consumed. Every descriptor is
        // close-on-exec, so no child holds a pipe end it does not use (else EOF never comes).
        var links: [(read: Int32, write: Int32)] = []
        for _ in 0..<(commands.count - 1 + (sink == nil ? 0 : 1)) {
            var fds: [Int32] = [-1, -1]
            guard cbackup_pipe_cloexec(&fds) == 0 else { throw SpawnFailure(program: "pipe", errno: errno) }
            links.append((fds[0], fds[1]))
        }
        var parentEnds = links.flatMap { [$0.read, $0.write] }
        defer { parentEnds.forEach { close($0) } }

        // stderr of each child: an unlinked temporary file, read back after the exit.
        var stderrFiles: [Int32] = []
        defer { stderrFiles.forEach { close($0) } }
        for _ in commands {
            var template = Array((NSTemporaryDirectory() + "/closebell-stderr-XXXXXX").utf8CString)
            let fd = template.withUnsafeMutableBufferPointer { cbackup_mkstemp_cloexec($0.baseAddress!) }
            guard fd >= 0 else { throw SpawnFailure(program: "mkstemp", errno: errno) }
            template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
            stderrFiles.append(fd)
        }

        var pids: [pid_t] = []
        for (index, command) in commands.enumerated() {
            let input = index == 0 ? (stdin ?? devNull) : links[index - 1].read
            let output: Int32
            if index == commands.count - 1 {
                output = sink != nil ? links[index].write : (stdout ?? devNull)
            } else {
                output = links[index].write
            }
            do {
                pids.append(try spawn(command, stdin: input, stdout: output, stderr: stderrFiles[index]))
            } catch {
                for pid in pids { kill(pid, SIGKILL) }
                for pid in pids { var status: Int32 = 0; while waitpid(pid, &status, 0) < 0 && errno == EINTR {} }
                throw error
            }
        }
        // Only the read end of our own pipe stays open here; the children own the rest.
        let sinkFD = sink != nil ? links[commands.count - 1].read : -1
        parentEnds.removeAll { $0 == sinkFD }
        parentEnds.forEach { close($0) }
        parentEnds = sinkFD >= 0 ? [sinkFD] : []

        var statuses = [ExitStatus?](repeating: nil, count: pids.count)
        var sinkOpen = sinkFD >= 0
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        var killStarted: Date?
        var timedOut = false
        var cancelled = false
        let bufferSize = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 16)
        defer { buffer.deallocate() }

        while statuses.contains(where: { $0 == nil }) || sinkOpen {
            if sinkOpen {
                var poller = pollfd(fd: sinkFD, events: Int16(POLLIN), revents: 0)
                if poll(&poller, 1, 50) > 0 {
                    let count = read(sinkFD, buffer, bufferSize)
                    if count > 0 {
                        sink?.consume(UnsafeRawBufferPointer(start: buffer, count: count))
                    } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                        sinkOpen = false
                    }
                }
            } else {
                usleep(10_000)
            }
            for (index, pid) in pids.enumerated() where statuses[index] == nil {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid { statuses[index] = ExitStatus(waitStatus: status) }
            }
            let running = pids.indices.filter { statuses[$0] == nil }.map { pids[$0] }
            if killStarted == nil && !running.isEmpty {
                if let deadline, Date() >= deadline { timedOut = true }
                if !timedOut && isCancelled() { cancelled = true }
                if timedOut || cancelled {
                    killStarted = Date()
                    running.forEach { kill($0, SIGTERM) }
                }
            } else if let killStarted, Date().timeIntervalSince(killStarted) > killGrace {
                running.forEach { kill($0, SIGKILL) }
            }
        }

        let outcomes = commands.indices.map { index in
            ChildOutcome(name: commands[index].name, status: statuses[index]!, stderrTail: readTail(stderrFiles[index]))
        }
        return PipelineOutcome(children: outcomes, timedOut: timedOut, cancelled: cancelled)
    }

    /// Starts one program with the given standard descriptors.
    private static func spawn(_ command: ChildCommand, stdin: Int32, stdout: Int32, stderr: Int32) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        // The children start with default signal handling (SIGPIPE included).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([command.executable] + command.arguments).map { strdup($0) } + [nil]
        let envp = command.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        // posix_spawnp searches this process's PATH for a bare name.
        let result = posix_spawnp(&pid, command.executable, &actions, &attributes, argv, envp)
        guard result == 0 else { throw SpawnFailure(program: command.executable, errno: result) }
        return pid
    }

    /// The last 4 kB of a file, as text.
    private static func readTail(_ fd: Int32, limit: Int = 4096) -> String {
        let size = Int(lseek(fd, 0, SEEK_END))
        guard size > 0 else { return "" }
        let start = max(0, size - limit)
        var bytes = [UInt8](repeating: 0, count: size - start)
        let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(start)) }
        guard count > 0 else { return "" }
        return String(decoding: bytes.prefix(count), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Finds a program on this process's PATH.
func findOnPath(_ name: String) -> String? {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
        let candidate = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}
