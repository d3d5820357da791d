import ChildProcess
import Foundation
import Toolkit

/// Where backups go, how many are kept and which programs make them.
///
/// Defaults: `keep` 7 newest, no daily/weekly/monthly keeps, labelled backups kept by their
/// own counts (4 `weekly`, 12 `monthly`, `keep` for other labels), pigz when it is on the PATH
/// else gzip at level 6, the `pg_dump`/`psql` of the server's major version when installed
/// under `/usr/lib/postgresql/N/bin` (else the newest newer one, else the PATH), a 6 hour
/// dump timeout, a 6 hour verify/restore timeout, a 10 second connect timeout, no lock wait
/// limit, and 5 seconds between SIGTERM and SIGKILL when a timeout or cancellation stops
/// the programs.
public struct BackupSettings: Sendable {
    /// The folder of the backup files (created with mode 0700 when missing).
    public var directory: URL
    /// How many newest backups rotation always keeps (at least 1). Default 7.
    public var keep: Int
    /// Also keep the newest backup of each of the last `keepDaily` days that have a backup
    /// (UTC days). 0 (default) turns it off.
    public var keepDaily: Int
    /// Also keep the newest backup of each of the last `keepWeekly` ISO weeks that have one. 0: off.
    public var keepWeekly: Int
    /// Also keep the newest backup of each of the last `keepMonthly` months that have one. 0: off.
    public var keepMonthly: Int
    /// How many newest backups of each label (`weekly`, `monthly`, ...) rotation keeps.
    /// Labelled backups are rotated only among themselves, label by label, so a monthly backup
    /// outlives any number of daily ones. A label not listed keeps `keep`. Default
    /// `["weekly": 4, "monthly": 12]`.
    public var keepLabelled: [String: Int]
    /// The gzip-compatible compressor (path or name on the PATH); nil: `pigz` if found, else `gzip`.
    public var compressor: String?
    /// The compression level, 1 (fast) to 9 (small). Default 6, gzip's own default.
    public var compressionLevel: Int
    /// `pg_dump` to run; nil: the one matching the server's major version (see type docs).
    public var pgDumpPath: String?
    /// `psql` used by restore; nil: found like `pg_dump`.
    public var psqlPath: String?
    /// `gzip` used to verify and decompress (its `-dc` checks CRC and length). Default "gzip".
    public var gzipPath: String
    /// Seconds the dump (pg_dump and the compressor together) may take. Default 21600 (6 h).
    public var dumpTimeout: Double
    /// Seconds a verification or a restore may take. Default 21600 (6 h).
    public var verifyTimeout: Double
    /// Seconds to wait when connecting (preflight, and `PGCONNECT_TIMEOUT` of the children
    /// unless the environment sets it). Default 10.
    public var connectTimeout: Int
    /// `pg_dump --lock-wait-timeout` in seconds: fail instead of waiting for a table locked by
    /// someone else. nil (default): wait.
    public var lockWaitTimeout: Double?
    /// Seconds between SIGTERM and SIGKILL when a timeout or cancellation stops the programs.
    public var killGrace: Double

    /// Creates settings; every argument but the directory has the documented default.
    public init(
        directory: URL, keep: Int = 7, keepDaily: Int = 0, keepWeekly: Int = 0, keepMonthly: Int = 0,
        keepLabelled: [String: Int] = BackupSettings.defaultKeepLabelled,
        compressor: String? = nil, compressionLevel: Int = 6, pgDumpPath: String? = nil, psqlPath: String? = nil,
        gzipPath: String = "gzip", dumpTimeout: Double = 21_600, verifyTimeout: Double = 21_600,
        connectTimeout: Int = 10, lockWaitTimeout: Double? = nil, killGrace: Double = 5
    ) {
        self.directory = directory
        self.keep = keep
        self.keepDaily = keepDaily
        self.keepWeekly = keepWeekly
        self.keepMonthly = keepMonthly
        self.keepLabelled = keepLabelled
        self.compressor = compressor
        self.compressionLevel = compressionLevel
        self.pgDumpPath = pgDumpPath
        self.psqlPath = psqlPath
        self.gzipPath = gzipPath
        self.dumpTimeout = dumpTimeout
        self.verifyTimeout = verifyTimeout
        self.connectTimeout = connectTimeout
        self.lockWaitTimeout = lockWaitTimeout
        self.killGrace = killGrace
    }

    /// The default counts of labelled backups: 4 weekly, 12 monthly.
    public static let defaultKeepLabelled = ["weekly": 4, "monthly": 12]

    /// The number of newest backups rotation keeps for `label` (nil: unlabelled backups):
    /// the configured count, raised (never lowered) to `requested` when a job asks for more.
    public func keepCount(label: String?, requested: Int? = nil) -> Int {
        let floor = label.flatMap { keepLabelled[$0] } ?? keep
        return max(floor, requested ?? floor)
    }

    /// The default folder: `$CLOSEBELL_BACKUP_DIR`, else `./backups`.
    public static var defaultDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["CLOSEBELL_BACKUP_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        }
        return URL(fileURLWithPath: "backups")
    }

    /// Applies `CLOSEBELL_BACKUP_DIR` when set (it wins over the config file's `directory`).
    public mutating func applyEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let dir = environment["CLOSEBELL_BACKUP_DIR"], !dir.isEmpty { directory = URL(fileURLWithPath: dir) }
    }

    /// Throws a `.configuration` error naming the first value out of range.
    public func validate() throws {
        func fail(_ message: String) -> BackupError { BackupError(stage: .configuration, message: message) }
        if keep < 1 { throw fail("keep must be at least 1 (got \(keep))") }
        if keepDaily < 0 || keepWeekly < 0 || keepMonthly < 0 {
            throw fail("keepDaily, keepWeekly and keepMonthly must be 0 or more")
        }
        for (label, count) in keepLabelled.sorted(by: { $0.key < $1.key }) {
            if !BackupNaming.isValidLabel(label) { throw fail("keep_labelled: label \(label) must be 1 to 64 letters, digits, '-' or '_'") }
            if count < 1 { throw fail("keep_labelled: \(label) must keep at least 1 (got \(count))") }
        }
        if !(1...9).contains(compressionLevel) { throw fail("compressionLevel must be 1...9 (got \(compressionLevel))") }
        if dumpTimeout <= 0 || verifyTimeout <= 0 { throw fail("timeouts must be positive") }
        if connectTimeout < 1 { throw fail("connectTimeout must be at least 1 second") }
        if let lockWaitTimeout, lockWaitTimeout <= 0 { throw fail("lockWaitTimeout must be positive") }
        if killGrace < 0 { throw fail("killGrace must be 0 or more") }
    }

    /// The compressor to run: the setting, else pigz when on the PATH, else gzip.
    public var resolvedCompressor: String {
        if let compressor, !compressor.isEmpty { return compressor }
        return findOnPath("pigz") ?? findOnPath("gzip") ?? "gzip"
    }
}

extension BackupSettings: Decodable {
    /// The keys of the config file's `backup:` section.
    enum CodingKeys: String, CodingKey {
        case directory, keep, keepDaily = "keep_daily", keepWeekly = "keep_weekly", keepMonthly = "keep_monthly"
        case keepLabelled = "keep_labelled", compressor, compressionLevel = "compression_level"
        case pgDump = "pg_dump", psql, gzip
        case dumpTimeout = "dump_timeout_seconds", verifyTimeout = "verify_timeout_seconds", connectTimeout = "connect_timeout_seconds"
        case lockWaitTimeout = "lock_wait_timeout_seconds", killGrace = "kill_grace_seconds"
    }

    /// Reads the `backup:` section: absent keys keep their defaults (the directory:
    /// `defaultDirectory`; `CLOSEBELL_BACKUP_DIR` wins, see `applyEnvironment`). The programs are
    /// checked now, not at the first backup hours later.
    public init(from decoder: any Decoder) throws {
        self.init(directory: Self.defaultDirectory)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let path = try c.decodeIfPresent(String.self, forKey: .directory) { directory = URL(fileURLWithPath: path) }
        keep = try c.setting(.keep, keep, min: 1)
        keepDaily = try c.setting(.keepDaily, keepDaily, min: 0)
        keepWeekly = try c.setting(.keepWeekly, keepWeekly, min: 0)
        keepMonthly = try c.setting(.keepMonthly, keepMonthly, min: 0)
        // Labels are data: any valid label is a key; a null count drops a default label's.
        try c.forEachEntry(of: .keepLabelled) { labels, label in
            guard BackupNaming.isValidLabel(label.stringValue) else { throw labels.invalid(label, "a label is 1 to 64 letters, digits, '-' or '_'") }
            keepLabelled[label.stringValue] = try labels.setting(label, nil, min: 1)
        }
        compressor = try c.setting(.compressor, compressor)
        compressionLevel = try c.setting(.compressionLevel, compressionLevel, min: 1)
        guard compressionLevel <= 9 else { throw c.invalid(.compressionLevel, "must be 1...9, got \(compressionLevel)") }
        pgDumpPath = try c.setting(.pgDump, pgDumpPath)
        psqlPath = try c.setting(.psql, psqlPath)
        gzipPath = try c.setting(.gzip, gzipPath)
        dumpTimeout = try c.setting(.dumpTimeout, dumpTimeout, min: 1)
        verifyTimeout = try c.setting(.verifyTimeout, verifyTimeout, min: 1)
        connectTimeout = try c.setting(.connectTimeout, connectTimeout, min: 1)
        lockWaitTimeout = try c.setting(.lockWaitTimeout, lockWaitTimeout, min: 0)
        killGrace = try c.setting(.killGrace, killGrace, min: 0)
        for (key, program) in [(CodingKeys.pgDump, pgDumpPath), (.psql, psqlPath), (.gzip, gzipPath), (.compressor, compressor)] {
            if let program, findOnPath(program) == nil { throw c.invalid(key, "no executable program \(program)") }
        }
        if let compressor {
            let name = URL(fileURLWithPath: compressor).lastPathComponent
            guard name.hasPrefix("pigz") || name.hasPrefix("gzip") else {
                throw c.invalid(.compressor, "must be pigz or gzip (the backup is a .sql.gz file), got \(compressor)")
            }
        }
    }
}
