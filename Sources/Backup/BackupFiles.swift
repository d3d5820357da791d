import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The backup files of a directory (count, total size, the newest one) and its filesystem, for
/// `table_sizes`, the metrics and the dashboard.
public struct BackupFiles: Sendable {
    /// Backup files (`*.sql.gz`, not hidden temporaries).
    public var count: Int
    /// The newest one's size in bytes.
    public var latestBytes: Int64?
    /// The newest one's modification time.
    public var latestDate: Date?
    /// Total bytes of all backups.
    public var totalBytes: Int64

    /// Scans `directory` (a missing or unreadable folder has no backups).
    public static func scan(_ directory: URL) -> BackupFiles {
        let keys: [URLResourceKey] = [.fileSizeKey, .contentModificationDateKey, .isRegularFileKey]
        let entries = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: keys, options: [.skipsHiddenFiles])) ?? []
        var result = BackupFiles(count: 0, latestBytes: nil, latestDate: nil, totalBytes: 0)
        for url in entries where url.lastPathComponent.hasSuffix(".sql.gz") {
            guard let values = try? url.resourceValues(forKeys: Set(keys)), values.isRegularFile == true else { continue }
            let size = Int64(values.fileSize ?? 0)
            result.count += 1
            result.totalBytes += size
            if let date = values.contentModificationDate, result.latestDate.map({ date > $0 }) ?? true {
                result.latestDate = date
                result.latestBytes = size
            }
        }
        return result
    }

    /// Size and free bytes of the filesystem holding `directory` (or its nearest existing
    /// parent, when the folder is not created yet); nil when statvfs fails.
    public static func filesystem(of directory: URL) -> (bytes: Int64, free: Int64)? {
        var url = directory.standardizedFileURL
        while !FileManager.default.fileExists(atPath: url.path), url.path != "/" { url = url.deletingLastPathComponent() }
        var info = statvfs()
        guard statvfs(url.path, &info) == 0 else { return nil }
        let unit = Int64(info.f_frsize > 0 ? info.f_frsize : info.f_bsize)
        return (Int64(info.f_blocks) * unit, Int64(info.f_bavail) * unit)
    }
}
