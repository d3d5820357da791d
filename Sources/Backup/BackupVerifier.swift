import CZlib
import ChildProcess
import Foundation
import Toolkit

#if canImport(Glibc)
import Glibc
#endif

/// What a verification found.
public struct BackupVerification: Sendable, Codable, Equatable {
    /// The file checked.
    public let path: String
    /// Its size.
    public let bytes: Int64
    /// The size of the SQL inside.
    public let dumpBytes: Int64
}

/// Checks that a file is a complete backup: `gzip -dc` decompresses it to the end (which
/// checks the CRC-32 and length of every gzip member, as `gzip -t` does) and the SQL ends
/// with pg_dump's `-- PostgreSQL database dump complete` line (followed at most by a few
/// lines, such as the `\unrestrict` of recent pg_dump versions). One pass over the file;
/// the decompressed text reaches this process only to look at its last 64 kB.
public struct BackupVerifier: Sendable {
    /// The marker pg_dump writes at the end of a finished dump.
    public static let trailer = "-- PostgreSQL database dump complete"
    /// The settings (gzip path, timeout) used.
    public let settings: BackupSettings

    /// Creates a verifier.
    public init(settings: BackupSettings) { self.settings = settings }

    /// Verifies `path`; throws a `.verify` error saying what is wrong.
    public func verify(path: String, isCancelled: @escaping @Sendable () -> Bool = { false }) async throws -> BackupVerification {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw BackupError(stage: .verify, message: "cannot open: \(String(cString: strerror(code)))", path: path, errno: code)
        }
        defer { close(fd) }
        var info = stat()
        fstat(fd, &info)
        let sink = OutputSink(tailLimit: 65_536)
        let outcome: PipelineOutcome
        do {
            outcome = try await Pipeline.run(
                [ChildCommand(executable: settings.gzipPath, arguments: ["-dc"], environment: ChildEnvironment.base())],
                stdin: fd, sink: sink, timeout: settings.verifyTimeout, killGrace: settings.killGrace, isCancelled: isCancelled)
        } catch let failure as SpawnFailure {
            throw BackupError(stage: .verify, message: failure.message, path: path, program: failure.program, errno: failure.errno)
        }
        let gzip = outcome.children[0]
        if outcome.cancelled { throw BackupError(stage: .cancelled, message: "verification cancelled", path: path) }
        if outcome.timedOut { throw BackupError(stage: .timeout, message: "verification did not finish in time", path: path) }
        guard gzip.status.succeeded else {
            throw BackupError(
                stage: .verify, message: "not a valid gzip file (truncated or corrupted)", path: path,
                program: gzip.name, exitStatus: gzip.status, stderrTail: gzip.stderrTail)
        }
        guard Self.endsWithTrailer(sink.tail) else {
            throw BackupError(
                stage: .verify, message: "the dump is incomplete: no '\(Self.trailer)' line at its end", path: path)
        }
        return BackupVerification(path: path, bytes: Int64(info.st_size), dumpBytes: sink.totalBytes)
    }

    /// True when the trailer is one of the last 10 non-empty lines.
    static func endsWithTrailer(_ tail: [UInt8]) -> Bool {
        let lines = String(decoding: tail, as: UTF8.self).split(separator: "\n")
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        return lines.suffix(10).contains(trailer)
    }
}

/// The checks a backup makes while it is written, so the file is never read back: the stream
/// pg_dump writes must end with the trailer line, and the gzip stream the compressor writes must
/// start with a gzip header and end with a trailer whose CRC-32 and length (ISIZE, modulo 2^32)
/// are those of every byte pg_dump wrote. That proves the compressor took in exactly the dump
/// and finished its stream. The compressor must write one gzip member, as gzip and pigz do.
/// (Each check object is fed by one relay thread of the pipeline and read after it returned;
/// a lock box orders the two.)
enum StreamChecks {
    /// Watches the stream pg_dump writes: its CRC-32, its length, its last 64 kB.
    final class Dump: Sendable {
        private let running = LockedBox<UInt32>(0)
        let sink = OutputSink(tailLimit: 65_536)
        /// The CRC-32 of every byte seen.
        var crc: UInt32 { running.value }
        var bytes: Int64 { sink.totalBytes }

        func observe(_ buffer: UnsafeRawBufferPointer) {
            guard let base = buffer.baseAddress?.assumingMemoryBound(to: Bytef.self), !buffer.isEmpty else { return }
            running.withLock { crc in crc = UInt32(truncatingIfNeeded: crc32(uLong(crc), base, uInt(buffer.count))) }
            sink.consume(buffer)
        }
    }

    /// Watches the stream the compressor writes: its first 10 and last 8 bytes, its length.
    final class Gzip: Sendable {
        private struct Ends {
            var head = [UInt8]()
            var last = [UInt8]()
            var bytes: Int64 = 0
        }
        private let ends = LockedBox(Ends())
        var head: [UInt8] { ends.value.head }
        var last: [UInt8] { ends.value.last }
        var bytes: Int64 { ends.value.bytes }

        func observe(_ buffer: UnsafeRawBufferPointer) {
            ends.withLock { e in
                if e.head.count < 10 { e.head.append(contentsOf: buffer.prefix(10 - e.head.count)) }
                e.bytes += Int64(buffer.count)
                e.last.append(contentsOf: buffer.suffix(8))
                if e.last.count > 8 { e.last.removeFirst(e.last.count - 8) }
            }
        }
    }

    /// What is wrong with the two streams, or nil when the backup is complete.
    static func failure(dump: Dump, gzip: Gzip) -> String? {
        guard gzip.head.count == 10, gzip.head[0] == 0x1f, gzip.head[1] == 0x8b, gzip.head[2] == 8, gzip.head[3] & 0xe0 == 0,
              gzip.bytes >= 20 else {
            return "the compressor did not write a gzip stream (no gzip header, or \(gzip.bytes) bytes)"
        }
        func little(_ bytes: ArraySlice<UInt8>) -> UInt32 { bytes.reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        let crc = little(gzip.last[0..<4])
        let size = little(gzip.last[4..<8])
        let expectedSize = UInt32(truncatingIfNeeded: dump.bytes)
        if crc != dump.crc || size != expectedSize {
            return "the compressed stream does not match the dump: its gzip trailer says CRC-32 "
                + String(format: "%08x", crc) + " over \(size) bytes (modulo 2^32), pg_dump wrote "
                + String(format: "%08x", dump.crc) + " over \(expectedSize) (truncated or corrupted)"
        }
        guard BackupVerifier.endsWithTrailer(dump.sink.tail) else {
            return "the dump is incomplete: no '\(BackupVerifier.trailer)' line at its end"
        }
        return nil
    }
}
