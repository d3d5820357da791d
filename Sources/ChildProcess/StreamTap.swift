import Foundation

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
public final class StreamTap: @unchecked Sendable {
    // @unchecked: `observe` runs and the fields change only on the tap's relay thread while
    // the pipeline runs; callers read the fields after `Pipeline.run` returned, and it returns
    // only after the relay thread ended (a semaphore orders the two).
    private let observe: (UnsafeRawBufferPointer) -> Void
    private let finished = DispatchSemaphore(value: 0)
    /// The errno of the write that failed (EPIPE, ENOSPC, ...); nil when every byte read was passed on.
    public private(set) var writeError: Int32?
    /// The errno of a read that failed; nil when the stream ended normally.
    public private(set) var readError: Int32?
    /// The bytes passed on.
    public private(set) var bytes: Int64 = 0

    /// A tap that shows every chunk of the stream to `observe`, on the relay thread, in order.
    public init(observe: @escaping (UnsafeRawBufferPointer) -> Void) {
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
                readError = errno
                return
            }
            if count == 0 { return }
            observe(UnsafeRawBufferPointer(start: buffer, count: count))
            var offset = 0
            while offset < count {
                let written = write(output, buffer + offset, count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    writeError = errno
                    return
                }
                offset += written
            }
            bytes += Int64(count)
        }
    }
}
