import Foundation
import PostgresClient
import TestSupport
import XCTest

@testable import Backup

/// Rotation keeps what it should: labelled backups by their own counts, never another
/// database's files; and one backup of a database runs at a time, whatever the folder.
final class BackupRotationSafetyTests: XCTestCase {
    override class func tearDown() {
        BackupFixtures.removeFolders()
        super.tearDown()
    }

    func testLabelledBackupsSurviveRotationOfDailyOnes() async throws {
        let db = try await BackupFixtures.populatedDatabase(rows: 50)
        let folder = try BackupFixtures.folder()
        let dailies = try BackupFixtures.fakeBackups(in: folder, database: db.name, stamps: (1...9).map { String(format: "202401%02d_010000", $0) })
        let monthlies = try BackupFixtures.fakeBackups(
            in: folder, database: db.name, stamps: ["20230901_020000", "20231001_020000", "20231101_020000", "20231201_020000"], label: "monthly")
        let weeklies = try BackupFixtures.fakeBackups(in: folder, database: db.name, stamps: ["20231225_030000", "20240101_030000"], label: "weekly")
        let settings = BackupSettings(directory: folder, keep: 2, keepLabelled: ["monthly": 4, "weekly": 4])

        // A week of daily backups: only unlabelled files rotate.
        for _ in 0..<3 {
            let daily = try await BackupRunner(settings: settings).run(conninfo: db.url)
            XCTAssertNil(daily.label)
            XCTAssertTrue(daily.rotated.allSatisfy { BackupNaming.parse(($0 as NSString).lastPathComponent)?.label == nil }, "\(daily.rotated)")
        }
        for file in monthlies + weeklies { XCTAssertTrue(FileManager.default.fileExists(atPath: file), file) }
        let unlabelled = try BackupNaming.list(directory: folder, database: db.name).filter { $0.label == nil }
        XCTAssertEqual(unlabelled.count, 2)
        for file in dailies { XCTAssertFalse(FileManager.default.fileExists(atPath: file), file) }

        // A monthly backup rotates the monthly ones by their own count (4): the oldest goes.
        let monthly = try await BackupRunner(settings: settings).run(conninfo: db.url, label: "monthly")
        XCTAssertEqual(monthly.rotated, [monthlies[0]])
        XCTAssertEqual(monthly.keep, 4)
        for file in monthlies.dropFirst() + weeklies { XCTAssertTrue(FileManager.default.fileExists(atPath: file), file) }
        // A job's keep may raise a label's count, never lower it.
        let weekly = try await BackupRunner(settings: settings).run(conninfo: db.url, label: "weekly", keep: 1)
        XCTAssertEqual(weekly.keep, 4)
        XCTAssertEqual(weekly.rotated, [])
        let listed = try BackupCatalog(settings: settings).list()
        XCTAssertEqual(listed.filter { $0.label == "monthly" }.count, 4)
        XCTAssertEqual(listed.filter { $0.label == "weekly" }.count, 3)
        XCTAssertEqual(listed.filter { $0.label == nil }.count, 2)
    }

    func testDatabasesWithLookAlikeNamesNeverRotateEachOthersFiles() async throws {
        let source = try await BackupFixtures.populatedDatabase(rows: 20)
        let spaced = source.name + " x"
        let admin = try await PostgresConnection.connect(source.url)
        try await admin.execute("CREATE DATABASE \(PostgresSession.quoteIdentifier(spaced)) TEMPLATE template0")
        await admin.close()
        let folder = try BackupFixtures.folder()
        // The files of `name_x`, which the old naming gave to `name x` too.
        let others = try BackupFixtures.fakeBackups(in: folder, database: source.name + "_x", stamps: ["20240101_000000", "20240102_000000"])
        let url = try TestCluster.shared().url(database: spaced.replacingOccurrences(of: " ", with: "%20"))
        let runner = BackupRunner(settings: BackupSettings(directory: folder, keep: 1))
        let first = try await runner.run(conninfo: url)
        let second = try await runner.run(conninfo: url)
        XCTAssertTrue((first.path as NSString).lastPathComponent.hasPrefix(source.name + "%20x_"), first.path)
        XCTAssertEqual(second.rotated, [first.path])
        for file in others { XCTAssertTrue(FileManager.default.fileExists(atPath: file), file) }
        XCTAssertEqual(try BackupNaming.list(directory: folder, database: spaced).map(\.path), [second.path])
    }

    func testTwoHostsNeverDumpTheSameDatabaseAtOnce() async throws {
        let db = try await BackupFixtures.populatedDatabase(rows: 50)
        let hostA = try BackupFixtures.folder("host-a"), hostB = try BackupFixtures.folder("host-b")
        let gate = try BackupFixtures.folder("gate")
        // pg_dump of host A says it started, then waits for the gate before dumping.
        let waiting = try BackupFixtures.script("""
            touch '\(gate.path)/started'
            while [ ! -f '\(gate.path)/open' ]; do sleep 0.05; done
            exec '\(try BackupFixtures.realPgDump)' "$@"
            """)
        let first = Task { try await BackupRunner(settings: BackupSettings(directory: hostA, pgDumpPath: waiting)).run(conninfo: db.url) }
        let started = try await eventually { FileManager.default.fileExists(atPath: gate.appendingPathComponent("started").path) }
        XCTAssertTrue(started)

        // Host B, another folder: refused while A dumps, naming the session that holds the lock.
        let error = await expectBackupError { try await BackupRunner(settings: BackupSettings(directory: hostB)).run(conninfo: db.url) }
        XCTAssertEqual(error?.stage, .locked)
        XCTAssertTrue(error?.message.contains("closebell backup") ?? false, error?.message ?? "")
        XCTAssertEqual(try BackupRunnerTests.backupLookalikes(hostB), [])

        // Another database is not blocked.
        let other = try await BackupFixtures.populatedDatabase(rows: 10)
        let unrelated = try await BackupRunner(settings: BackupSettings(directory: hostB)).run(conninfo: other.url)
        XCTAssertTrue(FileManager.default.fileExists(atPath: unrelated.path))

        XCTAssertTrue(FileManager.default.createFile(atPath: gate.appendingPathComponent("open").path, contents: Data()))
        let done = try await first.value
        XCTAssertTrue(FileManager.default.fileExists(atPath: done.path))
        // Once A finished, B can back up the database.
        let afterwards = try await BackupRunner(settings: BackupSettings(directory: hostB)).run(conninfo: db.url)
        XCTAssertTrue(FileManager.default.fileExists(atPath: afterwards.path))
    }
}
