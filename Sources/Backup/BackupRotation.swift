import Foundation

/// A backup file found in the backup folder: `{database}_{YYYYMMDD_HHMMSS}.sql.gz`.
public struct BackupFile: Sendable, Equatable, Codable {
    /// The full path.
    public let path: String
    /// The database part of the name (the sanitized database name).
    public let database: String
    /// When the backup started, from the name (UTC).
    public let created: Date
    /// The file size.
    public let bytes: Int64
}

/// Backup file names: `{database}_{YYYYMMDD_HHMMSS}.sql.gz`, the time in UTC.
public enum BackupNaming {
    /// The database name as used in file names: characters other than letters, digits, `_`,
    /// `-` and `.` become `_`, and a leading `.` becomes `_` (so it never names a hidden file).
    public static func fileComponent(_ database: String) -> String {
        var text = String(database.unicodeScalars.map { scalar -> Character in
            let allowed = (scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar))) || "_-.".unicodeScalars.contains(scalar)
            return allowed ? Character(scalar) : "_"
        })
        if text.hasPrefix(".") { text = "_" + text.dropFirst() }
        return text.isEmpty ? "_" : text
    }

    /// `YYYYMMDD_HHMMSS` in UTC.
    public static func stamp(_ date: Date) -> String {
        var time = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&time, &parts)
        return String(
            format: "%04d%02d%02d_%02d%02d%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
            Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }

    /// The final file name of a backup of `database` started at `date`.
    public static func fileName(database: String, date: Date) -> String {
        "\(fileComponent(database))_\(stamp(date)).sql.gz"
    }

    /// The temporary name while the backup is written: hidden, and not ending in `.sql.gz`.
    static func temporaryName(database: String, date: Date) -> String {
        ".\(fileComponent(database))_\(stamp(date)).sql.gz.partial"
    }

    /// Parses a file name: the database component and the time, or nil when it is not a backup
    /// name. With `database`, only names of that database match.
    public static func parse(_ name: String, database: String? = nil) -> (database: String, created: Date)? {
        let suffix = ".sql.gz"
        guard name.hasSuffix(suffix), !name.hasPrefix(".") else { return nil }
        let stem = name.dropLast(suffix.count)
        // {db}_{8 digits}_{6 digits}
        guard stem.count >= 17 else { return nil }
        let stampPart = stem.suffix(15)
        let prefix = stem.dropLast(16)
        guard stem.dropLast(15).last == "_", !prefix.isEmpty else { return nil }
        let digits = Array(stampPart)
        guard digits[8] == "_",
              digits.enumerated().allSatisfy({ $0.offset == 8 || ($0.element.isASCII && $0.element.isNumber) })
        else { return nil }
        if let database, fileComponent(database) != String(prefix) { return nil }
        var parts = DateComponents()
        parts.calendar = utcCalendar
        parts.timeZone = TimeZone(identifier: "UTC")
        parts.year = Int(String(digits[0..<4]))
        parts.month = Int(String(digits[4..<6]))
        parts.day = Int(String(digits[6..<8]))
        parts.hour = Int(String(digits[9..<11]))
        parts.minute = Int(String(digits[11..<13]))
        parts.second = Int(String(digits[13..<15]))
        guard parts.isValidDate, let date = parts.date else { return nil }
        return (String(prefix), date)
    }

    /// The backups in `directory` (regular files with backup names, of one database or all),
    /// newest first.
    public static func list(directory: URL, database: String? = nil) throws -> [BackupFile] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        var files: [BackupFile] = []
        for name in names {
            guard let parsed = parse(name, database: database) else { continue }
            let path = directory.appendingPathComponent(name).path
            var info = stat()
            guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            files.append(BackupFile(path: path, database: parsed.database, created: parsed.created, bytes: Int64(info.st_size)))
        }
        return files.sorted { ($0.created, $0.path) > ($1.created, $1.path) }
    }

    static let utcCalendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()
}

/// Which backups rotation keeps: the `keep` newest, plus (grandfather-father-son) the newest
/// backup of each of the last `keepDaily` days, `keepWeekly` ISO weeks and `keepMonthly`
/// months that have a backup (UTC). Everything else of that database is removed.
public enum BackupRotation {
    /// Splits `files` (one database's backups, any order) into kept and removed, newest first.
    public static func plan(
        _ files: [BackupFile], keep: Int, keepDaily: Int = 0, keepWeekly: Int = 0, keepMonthly: Int = 0
    ) -> (kept: [BackupFile], removed: [BackupFile]) {
        let sorted = files.sorted { ($0.created, $0.path) > ($1.created, $1.path) }
        var kept = Set(sorted.prefix(max(keep, 0)).map(\.path))
        var iso = Calendar(identifier: .iso8601)
        iso.timeZone = TimeZone(identifier: "UTC")!
        let utc = BackupNaming.utcCalendar
        let periods: [(Int, (Date) -> String)] = [
            (keepDaily, { date in let c = utc.dateComponents([.year, .month, .day], from: date); return "\(c.year!)-\(c.month!)-\(c.day!)" }),
            (keepWeekly, { date in let c = iso.dateComponents([.yearForWeekOfYear, .weekOfYear], from: date); return "\(c.yearForWeekOfYear!)-W\(c.weekOfYear!)" }),
            (keepMonthly, { date in let c = utc.dateComponents([.year, .month], from: date); return "\(c.year!)-\(c.month!)" }),
        ]
        for (count, period) in periods where count > 0 {
            var seen = Set<String>()
            for file in sorted {
                let key = period(file.created)
                if seen.contains(key) { continue }
                guard seen.count < count else { break }
                seen.insert(key)
                kept.insert(file.path)
            }
        }
        return (sorted.filter { kept.contains($0.path) }, sorted.filter { !kept.contains($0.path) })
    }
}
