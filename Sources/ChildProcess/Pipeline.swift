import CChildProcess
import Foundation
import Toolkit

#if canImport(Glibc)
import Glibc
#endif

/// One program of a pipeline.
public struct ChildCommand: Sendable {
    /// A path, or a bare name looked up on the PATH.
    public var executable: String
    /// The arguments (no secrets: they show in `ps`).
    public var arguments: [String]
    /// The child's environment (build it with `ChildEnvironment`); the variables of
    /// `ChildEnvironment.secretNames` are removed whatever the caller put here.
    public var environment: [String: String]

    /// Creates the command.
    public init(executable: String, arguments: [String], environment: [String: String]) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
    }

    /// The program's file name, for messages.
    public var name: String { (executable as NSString).lastPathComponent }
}

/// How one program of a pipeline ended, with the end of what it wrote to stderr.
public struct ChildOutcome: Sendable {
    /// The program's file name.
    public let name: String
    /// How it ended.
    public let status: ExitStatus
    /// The last 4 kB of its stderr.
    public let stderrTail: String
}

/// How a whole pipeline ended.
public struct PipelineOutcome: Sendable {
    /// One outcome per program, in pipeline order.
    public let children: [ChildOutcome]
    /// The deadline passed and the children were stopped.
    public let timedOut: Bool
    /// Cancellation was requested and the children were stopped.
    public let cancelled: Bool
}

/// Receives the last program's stdout, chunk by chunk, on the pipeline's thread.
public final class OutputSink: Sendable {
    private let state = LockedBox((tail: [UInt8](), totalBytes: Int64(0)))
    private let tailLimit: Int

    /// A sink keeping the last `tailLimit` bytes.
    public init(tailLimit: Int) { self.tailLimit = tailLimit }

    /// The last `tailLimit` bytes.
    public var tail: [UInt8] { state.withLock { $0.tail } }
    /// Every byte counted.
    public var totalBytes: Int64 { state.withLock { $0.totalBytes } }

    /// Counts `buffer` and keeps its end (the pipeline calls it; a `StreamTap` observer may too).
    public func consume(_ buffer: UnsafeRawBufferPointer) {
        let tailLimit = self.tailLimit
        state.withLock { s in
            s.totalBytes += Int64(buffer.count)
            if buffer.count >= tailLimit {
                s.tail = Array(buffer.suffix(tailLimit))
            } else {
                s.tail.append(contentsOf: buffer)
                if s.tail.count > tailLimit { s.tail.removeFirst(s.tail.count - tailLimit) }
            }
        }
    }
}

/// Runs programs connected by OS pipes (`a | b | c`) with `posix_spawn`, waiting for them on a
/// dedicated thread (never on Swift's cooperative pool). Data flows from program to program
/// through the kernel; only the last program's output can be handed to Swift (`sink`).
public enum Pipeline {
    /// Runs `commands` as a pipeline. `stdin`/`stdout` are descriptors the first/last program
    /// gets (nil: /dev/null, or with `sink`, a pipe read by this process). Each program's stderr
    /// goes to an anonymous temporary file whose last 4 kB are returned. When `timeout` passes
    /// or `isCancelled` turns true (or the calling task is cancelled), the programs get
    /// SIGTERM, then SIGKILL after `killGrace` seconds. `taps[i]` passes the output of program
    /// `i` through this process (see `StreamTap`); the last program cannot have both a tap and
    /// a `sink`. It returns once every program exited and every tap ended.
    public static func run(
        _ commands: [ChildCommand], stdin: Int32? = nil, stdout: Int32? = nil, sink: OutputSink? = nil,
        taps: [Int: StreamTap] = [:], timeout: Double?, killGrace: Double,
        isCancelled: @escaping @Sendable () -> Bool = { false }
    ) async throws -> PipelineOutcome {
        let stop = LockedBox(false)
        return try await ThreadExecutor.runDetached(name: "closebell-pipeline", {
            Result {
                try runBlocking(
                    commands, stdin: stdin, stdout: stdout, sink: sink, taps: taps, timeout: timeout, killGrace: killGrace,
                    isCancelled: { stop.value || isCancelled() })
            }
        }, onCancel: {
            stop.set(true)
        }).get()
    }

    /// The blocking body of `run`, on the pipeline's own thread.
    private static func runBlocking(
        _ commands: [ChildCommand], stdin: Int32?, stdout: Int32?, sink: OutputSink?, taps: [Int: StreamTap],
        timeout: Double?, killGrace: Double, isCancelled: () -> Bool
    ) throws -> PipelineOutcome {
        precondition(!commands.isEmpty)
        precondition(taps.keys.allSatisfy { commands.indices.contains($0) } && (sink == nil || taps[commands.count - 1] == nil))
        var toClose: [Int32] = []
        defer { toClose.forEach { close($0) } }
        let devNull = try Spawner.openDevNull()
        toClose.append(devNull)

        // Pipes between neighbours, plus one to us when output is consumed. Every descriptor is
        // close-on-exec, so no child holds a pipe end it does not use (else EOF never comes).
        var links: [(read: Int32, write: Int32)] = []
        for _ in 0..<(commands.count - 1 + (sink == nil ? 0 : 1)) {
            var fds: [Int32] = [-1, -1]
            guard cchild_pipe_cloexec(&fds) == 0 else { throw SpawnFailure(program: "pipe", errno: errno) }
            links.append((fds[0], fds[1]))
        }
        // A tapped program writes into a pipe of its own, read here by the tap's relay thread.
        var tapPipes: [Int: (read: Int32, write: Int32)] = [:]
        for index in taps.keys {
            var fds: [Int32] = [-1, -1]
            guard cchild_pipe_cloexec(&fds) == 0 else {
                links.forEach { close($0.read); close($0.write) }
                tapPipes.values.forEach { close($0.read); close($0.write) }
                throw SpawnFailure(program: "pipe", errno: errno)
            }
            tapPipes[index] = (fds[0], fds[1])
        }
        var parentEnds = links.flatMap { [$0.read, $0.write] } + tapPipes.values.flatMap { [$0.read, $0.write] }
        defer { parentEnds.forEach { close($0) } }

        // stderr of each child: an unlinked temporary file, read back after the exit.
        var stderrFiles: [Int32] = []
        defer { stderrFiles.forEach { close($0) } }
        for _ in commands {
            var template = Array((NSTemporaryDirectory() + "/closebell-stderr-XXXXXX").utf8CString)
            let fd = template.withUnsafeMutableBufferPointer { cchild_mkstemp_cloexec($0.baseAddress!) }
            guard fd >= 0 else { throw SpawnFailure(program: "mkstemp", errno: errno) }
            template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
            stderrFiles.append(fd)
        }

        var pids: [pid_t] = []
        for (index, command) in commands.enumerated() {
            let input = index == 0 ? (stdin ?? devNull) : links[index - 1].read
            let output: Int32
            if let tap = tapPipes[index] {
                output = tap.write
            } else if index == commands.count - 1 {
                output = sink != nil ? links[index].write : (stdout ?? devNull)
            } else {
                output = links[index].write
            }
            do {
                pids.append(try Spawner.spawn(
                    command.executable, command.arguments, environment: ChildEnvironment.withoutSecrets(command.environment),
                    stdin: input, stdout: output, stderr: stderrFiles[index]))
            } catch {
                for pid in pids { kill(pid, SIGKILL) }
                for pid in pids { _ = Spawner.waitBlocking(pid) }
                throw error
            }
        }
        // Only the read end of our own pipe stays open here, and each tap's ends, which its relay
        // thread closes; the children own the rest.
        let sinkFD = sink != nil ? links[commands.count - 1].read : -1
        var relayed: [(tap: StreamTap, input: Int32, output: Int32, closeOutput: Bool)] = []
        for (index, tap) in taps.sorted(by: { $0.key < $1.key }) {
            let last = index == commands.count - 1
            relayed.append((tap, tapPipes[index]!.read, last ? (stdout ?? devNull) : links[index].write, !last))
        }
        let kept = Set([sinkFD] + relayed.flatMap { [$0.input, $0.output] })
        parentEnds.filter { !kept.contains($0) }.forEach { close($0) }
        parentEnds = sinkFD >= 0 ? [sinkFD] : []
        for relay in relayed { relay.tap.start(input: relay.input, output: relay.output, closeOutput: relay.closeOutput) }

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
                statuses[index] = Spawner.poll(pid)
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

        relayed.forEach { $0.tap.wait() }

        let outcomes = commands.indices.map { index in
            ChildOutcome(name: commands[index].name, status: statuses[index]!, stderrTail: readTail(stderrFiles[index]))
        }
        return PipelineOutcome(children: outcomes, timedOut: timedOut, cancelled: cancelled)
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
