import ChildProcess
import Foundation
import Toolkit
import JobQueue
import Logging
import PostgresClient
import TestSupport
import XCTest

@testable import Backup

final class BackupRunnerTests: XCTestCase {
    override class func tearDown() {
        BackupFixtures.removeFolders()
        super.tearDown()
    }

    func testBackupVerifyAndRestoreReproduceEveryTable() async throws {
        let db = try await BackupFixtures.populatedDatabase()
        let folder = try BackupFixtures.folder()
        let result = try await BackupRunner(settings: BackupSettings(directory: folder)).run(conninfo: db.url)

        // The file: final name pattern, mode 0600, nothing else left behind but the lock file.
        let name = (result.path as NSString).lastPathComponent
        let parsed = try XCTUnwrap(BackupNaming.parse(name, database: db.name), "unexpected name \(name)")
        XCTAssertEqual(parsed.database, db.name)
        XCTAssertEqual(try BackupFixtures.names(folder), [".\(db.name).lock", name])
        var info = stat()
        XCTAssertEqual(stat(result.path, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600)
        XCTAssertEqual(Int64(info.st_size), result.bytes)
        XCTAssertEqual(result.database, db.name)
        XCTAssertTrue(result.rotated.isEmpty)
        XCTAssertGreaterThan(result.dumpBytes, result.bytes)

        let catalog = BackupCatalog(settings: BackupSettings(directory: folder))
        let verified = try await catalog.verify(path: result.path)
        XCTAssertEqual(verified.dumpBytes, result.dumpBytes)
        XCTAssertEqual(try catalog.list().map(\.path), [result.path])

        // Restore into a new database: same rows, same content, table by table.
        let target = db.name + "_restored"
        let restored = try await catalog.restore(path: result.path, into: target, conninfo: db.url)
        XCTAssertTrue(restored.created)
        let cluster = try TestCluster.shared()
        let original = try await BackupFixtures.tableChecksums(db.url)
        XCTAssertTrue(Set(["market.bars", "public.notes", "public.maintenance_jobs"]).isSubset(of: original.keys), "\(original.keys.sorted())")
        let copy = try await BackupFixtures.tableChecksums(cluster.url(database: target))
        XCTAssertEqual(copy, original)

        // The target now has tables: refused without force, and left as it was.
        let refused = await expectBackupError { try await catalog.restore(path: result.path, into: target, conninfo: db.url) }
        XCTAssertEqual(refused?.stage, .targetNotEmpty)
        let afterRefusal = try await BackupFixtures.tableChecksums(cluster.url(database: target))
        XCTAssertEqual(afterRefusal, original)

        // With force the database is replaced by a fresh restore.
        let conn = try await PostgresConnection.connect(cluster.url(database: target))
        try await conn.execute("INSERT INTO market.bars (symbol, at) VALUES ('EXTRA', now()); CREATE TABLE junk (x int)")
        await conn.close()
        let forced = try await catalog.restore(path: result.path, into: target, conninfo: db.url, force: true)
        XCTAssertTrue(forced.replaced)
        let afterForce = try await BackupFixtures.tableChecksums(cluster.url(database: target))
        XCTAssertEqual(afterForce, original)

        // An existing empty database is replaced without force.
        let empty = try TestCluster.freshDatabase("bkempty")
        let intoEmpty = try await catalog.restore(path: result.path, into: empty.name, conninfo: db.url)
        XCTAssertFalse(intoEmpty.created)
        XCTAssertTrue(intoEmpty.replaced)
        let inEmpty = try await BackupFixtures.tableChecksums(empty.url)
        XCTAssertEqual(inEmpty, original)
    }

    func testFailedRestoreLeavesNoDatabaseBehind() async throws {
        let db = try TestCluster.freshDatabase("bkbad")
        let folder = try BackupFixtures.folder()
        // A complete-looking dump whose SQL fails half way.
        let sql = "CREATE TABLE a (x int);\nINSERT INTO a VALUES (1);\nSELECT * FROM no_such_table;\n\(BackupVerifier.trailer)\n"
        let plain = folder.appendingPathComponent("bad.sql").path
        try sql.write(toFile: plain, atomically: true, encoding: .utf8)
        XCTAssertEqual(try Self.shell("gzip -f \(plain)"), 0)
        let target = db.name + "_target"
        let catalog = BackupCatalog(settings: BackupSettings(directory: folder))
        let error = await expectBackupError { try await catalog.restore(path: plain + ".gz", into: target, conninfo: db.url) }
        XCTAssertEqual(error?.stage, .restore)
        XCTAssertEqual(error?.program, "psql")
        XCTAssertEqual(error?.exitStatus, .exited(3))
        XCTAssertTrue(error?.stderrTail.contains("no_such_table") ?? false, error?.stderrTail ?? "")
        let conn = try await PostgresConnection.connect(db.url)
        let left = try await conn.query("SELECT count(*) AS n FROM pg_database WHERE datname = $1", [target]).first?.decode("n", as: Int.self)
        await conn.close()
        XCTAssertEqual(left, 0, "the database created for the failed restore was dropped")
    }

    func testFailedDumpLeavesNoFileAndRotatesNothing() async throws {
        // 1. The database does not exist: nothing is written, old backups of that name survive.
        let cluster = try TestCluster.shared()
        let folder = try BackupFixtures.folder()
        let missing = "no_such_db_\(getpid())"
        let old = try BackupFixtures.fakeBackups(
            in: folder, database: missing, stamps: ["20200101_000000", "20200102_000000", "20200103_000000"])
        let before = try BackupFixtures.names(folder)
        let settings = BackupSettings(directory: folder, keep: 1)
        let error = await expectBackupError { try await BackupRunner(settings: settings).run(conninfo: cluster.url(database: missing)) }
        XCTAssertEqual(error?.stage, .connect)
        XCTAssertTrue(error?.message.contains("does not exist") ?? false, error?.description ?? "")
        XCTAssertEqual(try BackupFixtures.names(folder), before)
        for path in old { XCTAssertTrue(FileManager.default.fileExists(atPath: path)) }

        // 2. pg_dump itself fails (a table it cannot lock in time): its stderr is reported, the
        //    temporary file is gone, old backups survive even with keep = 1.
        let db = try await BackupFixtures.populatedDatabase(rows: 100)
        let olds = try BackupFixtures.fakeBackups(in: folder, database: db.name, stamps: ["20210101_000000", "20210201_000000"])
        let locker = try await PostgresConnection.connect(db.url)
        try await locker.execute("BEGIN; LOCK TABLE market.bars IN ACCESS EXCLUSIVE MODE")
        var locked = settings
        locked.lockWaitTimeout = 0.2
        let before2 = try BackupFixtures.names(folder)
        let dumpError = await expectBackupError { try await BackupRunner(settings: locked).run(conninfo: db.url) }
        try await locker.execute("ROLLBACK")
        await locker.close()
        XCTAssertEqual(dumpError?.stage, .dump)
        XCTAssertEqual(dumpError?.program, "pg_dump")
        XCTAssertEqual(dumpError?.exitStatus, .exited(1))
        XCTAssertTrue(dumpError?.stderrTail.contains("LOCK TABLE market.bars") ?? false, dumpError?.description ?? "")
        XCTAssertEqual(try BackupFixtures.names(folder).filter { !$0.hasSuffix(".lock") }, before2.filter { !$0.hasSuffix(".lock") })
        for path in olds { XCTAssertTrue(FileManager.default.fileExists(atPath: path)) }
    }

    func testKilledOrTruncatedDumpNeverBecomesABackup() async throws {
        let db = try await BackupFixtures.populatedDatabase()
        let folder = try BackupFixtures.folder()
        let olds = try BackupFixtures.fakeBackups(in: folder, database: db.name, stamps: ["20220101_000000", "20220102_000000"])
        let pgDump = try BackupFixtures.realPgDump

        // pg_dump writes part of the dump, then dies by SIGKILL: gzip sees a clean EOF.
        let killed = try BackupFixtures.script("'\(pgDump)' \"$@\" | head -c 20000\nkill -KILL $$")
        var settings = BackupSettings(directory: folder, keep: 1, pgDumpPath: killed)
        let error = await expectBackupError { try await BackupRunner(settings: settings).run(conninfo: db.url) }
        XCTAssertEqual(error?.stage, .dump)
        XCTAssertEqual(error?.exitStatus, .signaled(SIGKILL))
        XCTAssertEqual(try Self.backupLookalikes(folder), olds.map { ($0 as NSString).lastPathComponent }.sorted())

        // A "pg_dump" that exits 0 after half a dump: only the verification can catch it.
        settings.pgDumpPath = try BackupFixtures.script("'\(pgDump)' \"$@\" | head -c 20000\nexit 0")
        let verifyError = await expectBackupError { try await BackupRunner(settings: settings).run(conninfo: db.url) }
        XCTAssertEqual(verifyError?.stage, .verify)
        XCTAssertTrue(verifyError?.message.contains("incomplete") ?? false, verifyError?.description ?? "")
        XCTAssertEqual(try Self.backupLookalikes(folder), olds.map { ($0 as NSString).lastPathComponent }.sorted())

        // A pg_dump that cannot be started at all.
        settings.pgDumpPath = "/nonexistent/pg_dump"
        let spawnError = await expectBackupError { try await BackupRunner(settings: settings).run(conninfo: db.url) }
        XCTAssertEqual(spawnError?.stage, .prepare)
        XCTAssertEqual(try Self.backupLookalikes(folder), olds.map { ($0 as NSString).lastPathComponent }.sorted())

        // A timeout stops both programs (a pg_dump that hangs after starting).
        settings.pgDumpPath = try BackupFixtures.script("'\(pgDump)' \"$@\" | head -c 100\nexec sleep 30")
        settings.dumpTimeout = 0.5
        settings.killGrace = 0.5
        let timeoutError = await expectBackupError { try await BackupRunner(settings: settings).run(conninfo: db.url) }
        XCTAssertEqual(timeoutError?.stage, .timeout)
        XCTAssertEqual(try Self.backupLookalikes(folder), olds.map { ($0 as NSString).lastPathComponent }.sorted())
    }

    /// The checks run on the streams while the file is written: with no gzip to read the file
    /// back (`gzipPath` points nowhere), a good backup still succeeds, and every cut or wrong
    /// stream is refused before the rename, rotating nothing.
    func testCutOrWrongStreamsAreRefusedWithoutReadingTheFileBack() async throws {
        let db = try await BackupFixtures.populatedDatabase()
        let folder = try BackupFixtures.folder()
        let olds = try BackupFixtures.fakeBackups(in: folder, database: db.name, stamps: ["20230101_000000", "20230102_000000"])
        let oldNames = olds.map { ($0 as NSString).lastPathComponent }.sorted()
        let pgDump = try BackupFixtures.realPgDump
        let noGzip = BackupSettings(directory: folder, keep: 1, gzipPath: "/nonexistent/gzip")

        // Compressors that exit 0 but write something else than the gzip of their whole input.
        let wrongCompressors = [
            ("garbage", "cat > /dev/null\nhead -c 5000 /dev/urandom", "did not write a gzip stream"),
            ("the gzip of other data", "cat > /dev/null\necho other | gzip -c", "does not match the dump"),
            ("the gzip of half the input", "head -c 20000 | gzip -c \"$@\"\ncat > /dev/null", "does not match the dump"),
            ("a stream cut before its trailer", "gzip -c \"$@\" | head -c -8", "does not match the dump"),
        ]
        for (what, body, expected) in wrongCompressors {
            var settings = noGzip
            settings.compressor = try BackupFixtures.script(body)
            let error = await expectBackupError { try await BackupRunner(settings: settings).run(conninfo: db.url) }
            XCTAssertEqual(error?.stage, .verify, "\(what): \(error?.description ?? "accepted")")
            XCTAssertTrue(error?.message.contains(expected) ?? false, "\(what): \(error?.description ?? "accepted")")
            XCTAssertEqual(try Self.backupLookalikes(folder), oldNames, what)
            XCTAssertFalse(try BackupFixtures.names(folder).contains { $0.hasSuffix(".partial") }, what)
        }

        // pg_dump killed half way: its stream is cut; refused, whatever the compressor made of it.
        var killed = noGzip
        killed.pgDumpPath = try BackupFixtures.script("'\(pgDump)' \"$@\" | head -c 20000\nkill -KILL $$")
        let killedError = await expectBackupError { try await BackupRunner(settings: killed).run(conninfo: db.url) }
        XCTAssertEqual(killedError?.stage, .dump)
        XCTAssertEqual(killedError?.exitStatus, .signaled(SIGKILL))

        // A dump cut short whose pg_dump exits 0: the trailer line is missing from its stream.
        killed.pgDumpPath = try BackupFixtures.script("'\(pgDump)' \"$@\" | head -c 20000\nexit 0")
        let cutError = await expectBackupError { try await BackupRunner(settings: killed).run(conninfo: db.url) }
        XCTAssertEqual(cutError?.stage, .verify)
        XCTAssertTrue(cutError?.message.contains("incomplete") ?? false, cutError?.description ?? "")
        XCTAssertEqual(try Self.backupLookalikes(folder), oldNames)

        // The good backup: complete, decompresses to what pg_dump wrote, the old ones rotated.
        let result = try await BackupRunner(settings: noGzip).run(conninfo: db.url)
        XCTAssertEqual(try Self.backupLookalikes(folder), [(result.path as NSString).lastPathComponent])
        XCTAssertEqual(result.bytes, Int64(try Data(contentsOf: URL(fileURLWithPath: result.path)).count))
        let verified = try await BackupVerifier(settings: BackupSettings(directory: folder)).verify(path: result.path)
        XCTAssertEqual(verified.dumpBytes, result.dumpBytes)
    }

    func testCorruptedOrTruncatedFilesFailVerification() async throws {
        let db = try await BackupFixtures.populatedDatabase()
        let folder = try BackupFixtures.folder()
        let result = try await BackupRunner(settings: BackupSettings(directory: folder)).run(conninfo: db.url)
        let data = try Data(contentsOf: URL(fileURLWithPath: result.path))
        let verifier = BackupVerifier(settings: BackupSettings(directory: folder))

        let truncated = folder.appendingPathComponent("truncated.sql.gz")
        try data.prefix(data.count / 2).write(to: truncated)
        let truncatedError = await expectBackupError { try await verifier.verify(path: truncated.path) }
        XCTAssertEqual(truncatedError?.stage, .verify)
        XCTAssertNotEqual(truncatedError?.exitStatus, .exited(0))
        XCTAssertEqual(truncatedError?.path, truncated.path)

        var bytes = [UInt8](data)
        for index in stride(from: bytes.count / 3, to: bytes.count / 3 + 64, by: 1) { bytes[index] ^= 0x5a }
        let corrupted = folder.appendingPathComponent("corrupted.sql.gz")
        try Data(bytes).write(to: corrupted)
        let corruptedError = await expectBackupError { try await verifier.verify(path: corrupted.path) }
        XCTAssertEqual(corruptedError?.stage, .verify)
        XCTAssertFalse(corruptedError?.stderrTail.isEmpty ?? true)

        let notGzip = folder.appendingPathComponent("plain.sql.gz")
        try Data("-- PostgreSQL database dump complete\n".utf8).write(to: notGzip)
        let notGzipError = await expectBackupError { try await verifier.verify(path: notGzip.path) }
        XCTAssertEqual(notGzipError?.stage, .verify)

        let missingError = await expectBackupError { try await verifier.verify(path: folder.appendingPathComponent("none.sql.gz").path) }
        XCTAssertEqual(missingError?.errno, ENOENT)

        // A restore of the truncated file fails and creates nothing.
        let catalog = BackupCatalog(settings: BackupSettings(directory: folder))
        let restoreError = await expectBackupError { try await catalog.restore(path: truncated.path, into: db.name + "_t", conninfo: db.url) }
        XCTAssertEqual(restoreError?.stage, .verify)
    }

    func testRotationThroughARealBackupKeepsNewestAndSparesOtherFiles() async throws {
        let db = try await BackupFixtures.populatedDatabase(rows: 50)
        let folder = try BackupFixtures.folder()
        let stamps = (1...6).map { String(format: "202301%02d_120000", $0) }
        let fakes = try BackupFixtures.fakeBackups(in: folder, database: db.name, stamps: stamps)
        // Files rotation must never touch.
        let others = [
            "other_20200101_000000.sql.gz", "\(db.name)_20200101_000000.sql.gz.bak", "\(db.name)_2020_000000.sql.gz",
            "notes.txt", ".\(db.name)_20200101_000000.sql.gz",
        ]
        for name in others { _ = FileManager.default.createFile(atPath: folder.appendingPathComponent(name).path, contents: Data()) }

        let result = try await BackupRunner(settings: BackupSettings(directory: folder, keep: 3)).run(conninfo: db.url)
        XCTAssertEqual(Set(result.rotated), Set(fakes.prefix(4)))
        let remaining = try BackupNaming.list(directory: folder, database: db.name).map(\.path)
        XCTAssertEqual(remaining, [result.path, fakes[5], fakes[4]])
        for name in others { XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path), name) }
    }

    func testRotationPlanKeepsNewestPlusDailyWeeklyMonthly() throws {
        func file(_ stamp: String) -> BackupFile {
            let parsed = BackupNaming.parse("db_\(stamp).sql.gz")!
            return BackupFile(path: "/b/db_\(stamp).sql.gz", database: "db", created: parsed.created, bytes: 1)
        }
        let stamps = [
            "20240315_230000", "20240315_010000", "20240314_120000", "20240313_120000", "20240312_120000",
            "20240310_120000", "20240303_120000", "20240225_120000", "20240131_120000", "20231231_120000",
            "20231130_120000",
        ]
        let files = stamps.map(file).shuffled()
        // keep 2 newest only.
        XCTAssertEqual(BackupRotation.plan(files, keep: 2).kept.map(\.path), stamps.prefix(2).map { file($0).path })
        // keep 1 + newest per day for 3 days with backups: 15th (23:00), 14th, 13th.
        let daily = BackupRotation.plan(files, keep: 1, keepDaily: 3).kept.map(\.path)
        XCTAssertEqual(daily, ["20240315_230000", "20240314_120000", "20240313_120000"].map { file($0).path })
        // keep 1 + newest per ISO week for 3 weeks: W11 (15th), W10 (10th, a Sunday), W09 (3rd).
        let weekly = BackupRotation.plan(files, keep: 1, keepWeekly: 3).kept.map(\.path)
        XCTAssertEqual(weekly, ["20240315_230000", "20240310_120000", "20240303_120000"].map { file($0).path })
        // keep 1 + newest per month for 4 months: March, February, January, December.
        let monthly = BackupRotation.plan(files, keep: 1, keepMonthly: 4)
        XCTAssertEqual(
            monthly.kept.map(\.path),
            ["20240315_230000", "20240225_120000", "20240131_120000", "20231231_120000"].map { file($0).path })
        XCTAssertEqual(monthly.kept.count + monthly.removed.count, stamps.count)
        // All together: the union.
        let all = BackupRotation.plan(files, keep: 2, keepDaily: 2, keepWeekly: 2, keepMonthly: 2).kept.map(\.path)
        XCTAssertEqual(
            all, ["20240315_230000", "20240315_010000", "20240314_120000", "20240310_120000", "20240225_120000"].map { file($0).path })
    }

    func testFileNames() throws {
        let date = Date(timeIntervalSince1970: 1_700_000_000)  // 2023-11-14 22:13:20 UTC
        XCTAssertEqual(BackupNaming.fileName(database: "market", date: date), "market_20231114_221320.sql.gz")
        XCTAssertEqual(BackupNaming.fileName(database: "../we ird", date: date), "%2E.%2Fwe%20ird_20231114_221320.sql.gz")
        XCTAssertEqual(BackupNaming.fileName(database: "market", date: date, label: "monthly"), "market_20231114_221320+monthly.sql.gz")
        // One-to-one: names that used to share a component no longer do.
        let components = ["prod db", "prod_db", "prod%20db", "prod+db", "prod/db", ".prod", "%2Eprod", "é", "%C3%A9", ""].map(BackupNaming.fileComponent)
        XCTAssertEqual(Set(components).count, components.count, "\(components)")
        XCTAssertEqual(BackupNaming.fileComponent("prod db"), "prod%20db")
        let labelled = try XCTUnwrap(BackupNaming.parse("my_db_20231114_221320+weekly-2.sql.gz"))
        XCTAssertEqual(labelled.database, "my_db")
        XCTAssertEqual(labelled.label, "weekly-2")
        XCTAssertEqual(labelled.created, date)
        XCTAssertNil(BackupNaming.parse("market_20231114_221320.sql.gz")?.label)
        XCTAssertNil(BackupNaming.parse("market_20231114_221320+.sql.gz"), "empty label")
        XCTAssertNil(BackupNaming.parse("market_20231114_221320+a b.sql.gz"), "label with a space")
        XCTAssertEqual(BackupNaming.parse("prod%20db_20231114_221320.sql.gz", database: "prod db")?.database, "prod%20db")
        XCTAssertNil(BackupNaming.parse("prod_db_20231114_221320.sql.gz", database: "prod db"))
        XCTAssertNil(BackupNaming.parse("prod%20db_20231114_221320.sql.gz", database: "prod_db"))
        XCTAssertEqual(BackupNaming.parse("market_20231114_221320.sql.gz")?.created, date)
        XCTAssertEqual(BackupNaming.parse("my_db_2_20231114_221320.sql.gz")?.database, "my_db_2")
        XCTAssertNil(BackupNaming.parse("my_db_2_20231114_221320.sql.gz", database: "my_db"))
        XCTAssertNil(BackupNaming.parse("market_20231314_221320.sql.gz"), "month 13")
        XCTAssertNil(BackupNaming.parse("market_20231114_221320.sql"))
        XCTAssertNil(BackupNaming.parse(".market_20231114_221320.sql.gz.partial"))
    }

    func testPasswordNeverReachesArgumentsEnvironmentOrErrors() async throws {
        let password = "s3cr:t\\pw'x"
        let encoded = "s3cr%3At%5Cpw'x"
        let url = "postgresql://bob:\(encoded)@127.0.0.1:1/somedb?sslmode=disable"
        let info = try ConnectionInfo(parsing: url)
        XCTAssertEqual(info.password, password)
        XCTAssertEqual(info.user, "bob")

        let arguments = BackupRunner.pgDumpArguments(lockWaitTimeout: 2)
        XCTAssertEqual(arguments, ["--format=plain", "--no-password", "--lock-wait-timeout=2000"])
        let environment = BackupRunner.childEnvironment(info: info, database: "somedb", passfile: "/tmp/x", connectTimeout: 10)
        XCTAssertEqual(environment["PGHOST"], "127.0.0.1")
        XCTAssertEqual(environment["PGPORT"], "1")
        XCTAssertEqual(environment["PGUSER"], "bob")
        XCTAssertEqual(environment["PGDATABASE"], "somedb")
        XCTAssertEqual(environment["PGSSLMODE"], "disable")
        XCTAssertEqual(environment["PGPASSFILE"], "/tmp/x")
        XCTAssertNil(environment["PGPASSWORD"])
        for (key, value) in environment { XCTAssertFalse(value.contains("s3cr"), "\(key) carries the password") }
        XCTAssertFalse(arguments.joined(separator: " ").contains("s3cr"))

        // The connection error of an unreachable server does not show it.
        let folder = try BackupFixtures.folder()
        let error = await expectBackupError { try await BackupRunner(settings: BackupSettings(directory: folder)).run(conninfo: url) }
        XCTAssertEqual(error?.stage, .connect)
        XCTAssertFalse("\(error!)".contains("s3cr"), "\(error!)")

        // What the real child sees: argv without it, a 0600 PGPASSFILE holding it, deleted after.
        let db = try TestCluster.freshDatabase("bkpw")
        let cluster = try TestCluster.shared()
        let spy = try BackupFixtures.script("""
            echo "ARGV: $0 $*" >&2
            echo "PASSFILE: $PGPASSFILE" >&2
            echo "MODE: $(stat -c %a "$PGPASSFILE")" >&2
            printf 'CONTENT: %s\n' "$(cat "$PGPASSFILE")" >&2
            echo "PGPASSWORD: ${PGPASSWORD:-unset}" >&2
            exit 1
            """)
        let withPassword = "postgresql://closebell:\(encoded)@127.0.0.1:\(cluster.port)/\(db.name)"
        let settings = BackupSettings(directory: folder, pgDumpPath: spy)
        let spyError = await expectBackupError { try await BackupRunner(settings: settings).run(conninfo: withPassword) }
        let tail = try XCTUnwrap(spyError?.stderrTail)
        XCTAssertEqual(spyError?.stage, .dump)
        XCTAssertTrue(tail.contains("ARGV: \(spy) --format=plain --no-password"), tail)
        XCTAssertTrue(tail.contains("MODE: 600"), tail)
        XCTAssertTrue(tail.contains("CONTENT: *:*:*:*:********"), "the password file holds the (scrubbed) password: \(tail)")
        XCTAssertTrue(tail.contains("PGPASSWORD: unset"), tail)
        XCTAssertFalse("\(spyError!)".contains("s3cr"))
        let passfile = try XCTUnwrap(tail.split(separator: "\n").first { $0.hasPrefix("PASSFILE: ") }?.dropFirst(10))
        XCTAssertFalse(FileManager.default.fileExists(atPath: String(passfile)), "password file left at \(passfile)")

        XCTAssertEqual(Redactor.scrub("postgres://u:pw@h/db and password='a b' password=c"), "postgres://u:********@h/db and password=******** password=********")
        XCTAssertThrowsError(try ConnectionInfo(parsing: "host=x password")) { error in
            XCTAssertTrue("\(error)".contains("invalid connection string"), "\(error)")
        }
    }

    func testDiskFullFailsCleanly() async throws {
        guard geteuid() == 0 else { throw XCTSkip("mounting a small tmpfs needs root") }
        let folder = try BackupFixtures.folder("small")
        guard try Self.shell("mount -t tmpfs -o size=256k tmpfs '\(folder.path)'") == 0 else {
            throw XCTSkip("mount -t tmpfs is not permitted in this environment")
        }
        defer { _ = try? Self.shell("umount '\(folder.path)'") }
        // Random text barely compresses: far more than 256 kB of gzip output.
        let db = try await BackupFixtures.populatedDatabase(rows: 100)
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("CREATE TABLE noise AS SELECT i, md5(random()::text) || md5(random()::text) AS t FROM generate_series(1, 40000) i")
        await conn.close()
        let olds = try BackupFixtures.fakeBackups(in: folder, database: db.name, stamps: ["20240101_000000", "20240102_000000"])
        let error = await expectBackupError {
            try await BackupRunner(settings: BackupSettings(directory: folder, keep: 1)).run(conninfo: db.url)
        }
        XCTAssertEqual(error?.stage, .compress, error?.description ?? "")
        XCTAssertTrue(error?.isDiskFull ?? false, error?.description ?? "")
        XCTAssertEqual(try Self.backupLookalikes(folder), olds.map { ($0 as NSString).lastPathComponent }.sorted())
        XCTAssertFalse(try BackupFixtures.names(folder).contains { $0.hasSuffix(".partial") })
    }

    func testBackupTaskRunsWithArgumentsAndRefusesBadOnes() async throws {
        let db = try await BackupFixtures.populatedDatabase(rows: 50)
        let folder = try BackupFixtures.folder()
        let fakes = try BackupFixtures.fakeBackups(in: folder, database: db.name, stamps: ["20240101_000000", "20240102_000000", "20240103_000000"])
        let task = BackupTask(settings: BackupSettings(directory: folder))
        XCTAssertEqual(task.name, "backup")
        func context(_ args: String) -> JobContext {
            JobContext(
                jobID: 1, task: "backup", args: PostgresJSON(text: args), attempt: 1, runID: nil, previousProgress: nil,
                logger: Logger(label: "test"), conninfo: db.url)
        }
        // A labelled job rotates only its label's files; its keep below the configured 12 is raised to 12.
        let result = try await task.run(context(#"{"keep": 2, "label": "monthly"}"#))
        XCTAssertEqual(result.label, "monthly")
        XCTAssertEqual(result.keep, 12)
        XCTAssertEqual(result.database, db.name)
        XCTAssertTrue(result.path.hasSuffix("+monthly.sql.gz"), result.path)
        XCTAssertEqual(result.rotated, [])
        XCTAssertTrue(FileManager.default.fileExists(atPath: result.path))
        // An unlabelled job with keep 2 cannot go below the configured 7 either; keep 8 raises it.
        let floored = try await task.run(context(#"{"keep": 2}"#))
        XCTAssertEqual(floored.keep, 7)
        XCTAssertEqual(floored.rotated, [])
        let raised = try await task.run(context(#"{"keep": 8}"#))
        XCTAssertEqual(raised.keep, 8)
        for fake in fakes { XCTAssertTrue(FileManager.default.fileExists(atPath: fake), fake) }

        for bad in [#"{"keep": 0}"#, #"{"keep": "3"}"#, #"{"label": "a b"}"#, #"{"dir": "/tmp"}"#, "[]"] {
            do {
                _ = try await task.run(context(bad))
                XCTFail("accepted \(bad)")
            } catch is InvalidJobArguments {
            }
        }
    }

    func testCancelledJobStopsPgDumpAndLeavesNothing() async throws {
        let db = try await BackupFixtures.populatedDatabase(rows: 50)
        let folder = try BackupFixtures.folder()
        let hanging = try BackupFixtures.script("'\(try BackupFixtures.realPgDump)' \"$@\" | head -c 100\nexec sleep 30")
        let task = BackupTask(settings: BackupSettings(directory: folder, pgDumpPath: hanging, killGrace: 0.5))
        let flag = CancellationFlag()
        let context = JobContext(
            jobID: 7, task: "backup", args: PostgresJSON(text: "{}"), attempt: 1, runID: nil, previousProgress: nil,
            logger: Logger(label: "test"), conninfo: db.url, cancellation: flag)
        let running = Task { try await task.run(context) }
        // The worker raises the flag when the job row is cancelled; the task notices while pg_dump runs.
        try await Task.sleep(nanoseconds: 300_000_000)
        flag.set()
        let error = await expectBackupError { try await running.value }
        XCTAssertEqual(error?.stage, .cancelled)
        XCTAssertEqual(try Self.backupLookalikes(folder), [])

        // Cancelling the Swift task itself works the same way.
        let runner = BackupRunner(settings: BackupSettings(directory: folder, pgDumpPath: hanging, killGrace: 0.5))
        let second = Task { try await runner.run(conninfo: db.url) }
        try await Task.sleep(nanoseconds: 300_000_000)
        second.cancel()
        let cancelled = await expectBackupError { try await second.value }
        XCTAssertEqual(cancelled?.stage, .cancelled)
        XCTAssertEqual(try Self.backupLookalikes(folder), [])
    }

    func testOnlyOneBackupOfADatabaseAtATimePerFolder() async throws {
        let db = try await BackupFixtures.populatedDatabase(rows: 50)
        let folder = try BackupFixtures.folder()
        let lock = try DirectoryLock(directory: folder, database: db.name)
        let error = await expectBackupError { try await BackupRunner(settings: BackupSettings(directory: folder)).run(conninfo: db.url) }
        lock.release()
        XCTAssertEqual(error?.stage, .locked)
        XCTAssertEqual(error?.retryable, true, "another backup holds the lock: a later attempt can run")
        // Two backups in the same second get distinct names; neither replaces the other.
        let runner = BackupRunner(settings: BackupSettings(directory: folder))
        let first = try await runner.run(conninfo: db.url)
        let second = try await runner.run(conninfo: db.url)
        XCTAssertNotEqual(first.path, second.path)
        XCTAssertEqual(try BackupNaming.list(directory: folder, database: db.name).count, 2)
    }

    func testSettingsAreValidated() async throws {
        let folder = try BackupFixtures.folder()
        for settings in [
            BackupSettings(directory: folder, keep: 0), BackupSettings(directory: folder, keepDaily: -1),
            BackupSettings(directory: folder, compressionLevel: 10), BackupSettings(directory: folder, dumpTimeout: 0),
        ] {
            let error = await expectBackupError { try await BackupRunner(settings: settings).run(conninfo: "") }
            XCTAssertEqual(error?.stage, .configuration)
            XCTAssertEqual(error?.retryable, false, "an invalid setting fails the job at its first attempt")
        }
    }

    // MARK: - Helpers

    /// Names in the folder that look like backups or temporary backups.
    static func backupLookalikes(_ folder: URL) throws -> [String] {
        try BackupFixtures.names(folder).filter { $0.contains(".sql.gz") }
    }

    /// Runs a shell command (with this process's environment) through the one spawn helper;
    /// returns its exit status.
    static func shell(_ command: String) throws -> Int32 {
        try ChildProcess.run("/bin/sh", ["-c", command], replacing: ProcessInfo.processInfo.environment).status
    }
}
