import ChildProcess
import Foundation

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
