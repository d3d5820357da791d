import Foundation

/// A temporary folder of one test, removed when the test's instance lets go of it.
final class ScratchFolder {
    /// The folder.
    let url: URL

    /// Creates `closebell-<prefix>-<pid>-<uuid>` in the temporary directory.
    init(_ prefix: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-\(prefix)-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// A path inside the folder.
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}
