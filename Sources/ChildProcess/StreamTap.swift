import Foundation
import Toolkit

#if canImport(Glibc)
import Glibc
#endif

/// A stream of a pipeline that passes through this process on its way: a program's output is
/// read by a relay thread here, shown to `observe`, and written on to the next program's
/// stdin (or, after the last program, to the pipeline's `stdout` descriptor). It lets a caller
/// check a stream while it flows instead of reading the result back afterwards.
///
/// The relay ends at the end of its input. When a write fails (the next program stopped
/// reading, or a full disk), it records the error and closes its input, so the program
/// feeding it gets EPIPE instead of waiting forever.
public final class StreamTap: Sendable {
    /// What the relay saw, written by the relay thread and read after `Pipeline.run` returned.
    private struct Outcome {
        var writeError: Int32?
        var readError: Int32?
        var bytes: Int64 = 0
    }
    private let observe: @Sendable (UnsafeRawBufferPointer) -> Void
    private let finished = DispatchSemaphore(value: 0)
    private let outcome = LockedBox(Outcome())
    /// The errno of the write that failed (EPIPE, ENOSPC, ...); nil when every byte read was passed on.
    public var writeError: Int32? { outcome.value.writeError }
    /// The errno of a read that failed; nil when the stream ended normally.
    public var readError: Int32? { outcome.value.readError }
    /// The bytes passed on.
    public var bytes: Int64 { outcome.value.bytes }

    /// A tap that shows every chunk of the stream to `observe`, on the relay thread, in order.
    public init(observe: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) {
        self.observe = observe
    }

    /// Starts the relay thread: `input` to `output`. It closes `input`, and `output` when
    /// `closeOutput` (a pipe to the next program: closing it is that program's end of input).
    func start(input: Int32, output: Int32, closeOutput: Bool) {
        let thread = Thread { [self] in
            relay(input: input, output: output)
            close(input)
            if closeOutput { close(output) }
            finished.signal()
        }
        thread.name = "closebell-stream-tap"
        thread.start()
    }

    /// Waits for the relay thread to end.
    func wait() { finished.wait() }

    private func relay(input: Int32, output: Int32) {
        // A write to a pipe whose reader is gone fails with EPIPE instead of raising SIGPIPE
        // (the signal goes to the writing thread, which blocks it).
        var blocked = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &blocked, nil)

        let size = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = read(input, buffer, size)
            if count < 0 {
                if errno == EINTR { continue }
                let failed = errno
                outcome.withLock { $0.readError = failed }
                return
            }
            if count == 0 { return }
            observe(UnsafeRawBufferPointer(start: buffer, count: count))
            var offset = 0
            while offset < count {
                let written = write(output, buffer + offset, count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    let failed = errno
                    outcome.withLock { $0.writeError = failed }
                    return
                }
                offset += written
            }
            outcome.withLock { $0.bytes += Int64(count) }
        }
    }
}
