import Foundation

/// A backup file found in the backup folder: `{database}_{YYYYMMDD_HHMMSS}[+{label}].sql.gz`.
public struct BackupFile: Sendable, Equatable, Codable {
    /// The full path.
    public let path: String
    /// The database part of the name (`BackupNaming.fileComponent` of the database name).
    public let database: String
    /// When the backup started, from the name (UTC).
    public let created: Date
    /// The file size.
    public let bytes: Int64
    /// The backup job's label (`weekly`, `monthly`, ...), nil for an unlabelled backup.
    public let label: String?

    /// Creates a file entry.
    public init(path: String, database: String, created: Date, bytes: Int64, label: String? = nil) {
        self.path = path
        self.database = database
        self.created = created
        self.bytes = bytes
        self.label = label
    }
}

/// Backup file names: `{database}_{YYYYMMDD_HHMMSS}.sql.gz`, or with a job's label
/// `{database}_{YYYYMMDD_HHMMSS}+{label}.sql.gz`, the time in UTC.
public enum BackupNaming {
    /// The database name as used in file names, one-to-one: letters, digits, `_`, `-` and `.`
    /// (but a leading `.`, so it never names a hidden file) stay; every other byte of the
    /// UTF-8 name, `%` included, becomes `%XX`. `prod db` is `prod%20db`, never `prod_db`'s
    /// component. (Versions before labels wrote `_` for those bytes; such files are listed
    /// under the component they have.)
    public static func fileComponent(_ database: String) -> String {
        var text = ""
        for (index, byte) in database.utf8.enumerated() {
            let scalar = Unicode.Scalar(byte)
            let plain = (byte < 0x80 && CharacterSet.alphanumerics.contains(scalar)) || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: "-") || (byte == UInt8(ascii: ".") && index > 0)
            text += plain ? String(Character(scalar)) : String(format: "%%%02X", byte)
        }
        return text.isEmpty ? "%" : text
    }

    /// True for a label a backup job may give: 1 to 64 ASCII letters, digits, `-` or `_`.
    public static func isValidLabel(_ label: String) -> Bool {
        (1...64).contains(label.utf8.count) && label.utf8.allSatisfy { byte in
            (byte < 0x80 && CharacterSet.alphanumerics.contains(Unicode.Scalar(byte))) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
        }
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

    /// The final file name of a backup of `database` started at `date`, with the job's label.
    public static func fileName(database: String, date: Date, label: String? = nil) -> String {
        "\(fileComponent(database))_\(stamp(date))\(label.map { "+\($0)" } ?? "").sql.gz"
    }

    /// The temporary name while the backup is written: hidden, and not ending in `.sql.gz`.
    static func temporaryName(database: String, date: Date, label: String? = nil) -> String {
        ".\(fileName(database: database, date: date, label: label)).partial"
    }

    /// Parses a file name: the database component, the time and the label, or nil when it is
    /// not a backup name. With `database`, only names of that database match. (`+` never
    /// appears in a database component or a label, so the split is unambiguous.)
    public static func parse(_ name: String, database: String? = nil) -> (database: String, created: Date, label: String?)? {
        let suffix = ".sql.gz"
        guard name.hasSuffix(suffix), !name.hasPrefix(".") else { return nil }
        var stem = Substring(name.dropLast(suffix.count))
        var label: String?
        if let plus = stem.lastIndex(of: "+") {
            let text = String(stem[stem.index(after: plus)...])
            guard isValidLabel(text) else { return nil }
            label = text
            stem = stem[..<plus]
        }
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
        return (String(prefix), date, label)
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
            files.append(BackupFile(
                path: path, database: parsed.database, created: parsed.created, bytes: Int64(info.st_size), label: parsed.label))
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
/// months that have a backup (UTC). Everything else of the files given is removed: a run
/// passes only the files of its own database and label.
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
