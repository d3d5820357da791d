import Foundation
import PostgresClient
import TestSupport
import XCTest

@testable import Backup

/// Restore is all or nothing: damaged files and failing SQL leave a target with data exactly as
/// it was, even with `--force`; a good file replaces it.
final class RestoreSafetyTests: XCTestCase {
    override class func tearDown() {
        BackupFixtures.removeFolders()
        super.tearDown()
    }

    /// Databases whose names restore uses for its temporary and replaced copies.
    private func leftovers(_ url: String) async throws -> [String] {
        let conn = try await PostgresConnection.connect(url)
        let names = try await conn.query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'closebell\\_restore\\_%' OR datname LIKE 'closebell\\_replaced\\_%'"
        ).map { try $0.decode("datname", as: String.self) }
        await conn.close()
        return names
    }

    func testDamagedFilesWithForceLeaveTheTargetUnchangedAndAGoodOneReplacesIt() async throws {
        let source = try await BackupFixtures.populatedDatabase(rows: 300)
        let folder = try BackupFixtures.folder()
        let good = try await BackupRunner(settings: BackupSettings(directory: folder)).run(conninfo: source.url)

        // The target has data of its own.
        let target = try await BackupFixtures.populatedDatabase(rows: 77)
        let setup = try await PostgresConnection.connect(target.url)
        try await setup.execute("CREATE TABLE only_here (x int); INSERT INTO only_here VALUES (1), (2)")
        await setup.close()
        let before = try await BackupFixtures.tableChecksums(target.url)
        XCTAssertEqual(before["public.only_here"]?.hasPrefix("2 rows"), true)

        let data = try Data(contentsOf: URL(fileURLWithPath: good.path))
        let truncated = folder.appendingPathComponent("truncated.sql.gz")
        try data.prefix(data.count * 2 / 3).write(to: truncated)
        var bytes = [UInt8](data)
        bytes[bytes.count / 2] ^= 0x01
        let flipped = folder.appendingPathComponent("flipped.sql.gz")
        try Data(bytes).write(to: flipped)

        let catalog = BackupCatalog(settings: BackupSettings(directory: folder))
        for file in [truncated, flipped] {
            let error = await expectBackupError {
                try await catalog.restore(path: file.path, into: target.name, conninfo: source.url, force: true)
            }
            XCTAssertEqual(error?.stage, .verify, file.lastPathComponent)
            XCTAssertTrue(error?.message.contains("step 'verify the backup file' failed") ?? false, error?.message ?? "")
            XCTAssertTrue(error?.message.contains("the database \(target.name) was not changed") ?? false, error?.message ?? "")
            let after = try await BackupFixtures.tableChecksums(target.url)
            XCTAssertEqual(after, before, file.lastPathComponent)

            // As a user runs it: non-zero exit, the step named, the rows still there.
            let run = try ClosebellBinary.run([
                "backup", "restore", file.path, "--dbname", target.name, "--force", "--database-url", source.url, "--dir", folder.path,
            ])
            XCTAssertNotEqual(run.status, 0, run.output)
            XCTAssertTrue(run.output.contains("verify the backup file"), run.output)
            let afterCLI = try await BackupFixtures.tableChecksums(target.url)
            XCTAssertEqual(afterCLI, before, file.lastPathComponent)
        }

        // A complete file whose SQL fails at its end: loaded into a temporary database, never swapped in.
        let plain = folder.appendingPathComponent("failing.sql").path
        XCTAssertEqual(try BackupRunnerTests.shell("gzip -dc '\(good.path)' | grep -v '^-- PostgreSQL database dump complete' > '\(plain)'"), 0)
        try ("SELECT * FROM no_such_table;\n\(BackupVerifier.trailer)\n").appendLine(toFile: plain)
        XCTAssertEqual(try BackupRunnerTests.shell("gzip -f '\(plain)'"), 0)
        let loadError = await expectBackupError {
            try await catalog.restore(path: plain + ".gz", into: target.name, conninfo: source.url, force: true)
        }
        XCTAssertEqual(loadError?.stage, .restore)
        XCTAssertEqual(loadError?.program, "psql")
        XCTAssertTrue(loadError?.message.contains("load the file into the temporary database closebell_restore_") ?? false, loadError?.message ?? "")
        XCTAssertTrue(loadError?.stderrTail.contains("no_such_table") ?? false, loadError?.stderrTail ?? "")
        let afterLoad = try await BackupFixtures.tableChecksums(target.url)
        XCTAssertEqual(afterLoad, before)
        let afterLoadLeft = try await leftovers(source.url)
        XCTAssertEqual(afterLoadLeft, [])

        // A good file with force replaces the database, disconnecting a session that uses it.
        let session = try await PostgresConnection.connect(target.url)
        let restored = try await catalog.restore(path: good.path, into: target.name, conninfo: source.url, force: true)
        XCTAssertTrue(restored.replaced)
        XCTAssertFalse(restored.created)
        XCTAssertEqual(restored.warnings, [])
        let replaced = try await BackupFixtures.tableChecksums(target.url)
        let original = try await BackupFixtures.tableChecksums(source.url)
        XCTAssertEqual(replaced, original)
        XCTAssertNil(replaced["public.only_here"])
        let afterSwapLeft = try await leftovers(source.url)
        XCTAssertEqual(afterSwapLeft, [])
        do {
            _ = try await session.query("SELECT 1")
            XCTFail("the session on the replaced database was not disconnected")
        } catch {}
        await session.close()
    }

    /// TimescaleDB's documented procedure around the load. Needs a server with TimescaleDB
    /// preloaded: the one `CLOSEBELL_TEST_TIMESCALE_URL` names, else the test cluster if it has it.
    func testTimescaleDumpRestoresWithPreAndPostRestore() async throws {
        var server = ProcessInfo.processInfo.environment["CLOSEBELL_TEST_TIMESCALE_URL"] ?? ""
        if server.isEmpty { server = try TestCluster.shared().url(database: "postgres") }
        let admin = try await PostgresConnection.connect(server)
        let preload: String = try await admin.query("SELECT current_setting('shared_preload_libraries') AS s").first!.decode("s")
        guard preload.contains("timescaledb") else {
            await admin.close()
            throw XCTSkip("TimescaleDB is not in shared_preload_libraries of the test server")
        }
        let suffix = UInt32.random(in: 0...UInt32.max)
        let (source, target) = ("closebell_tss_\(suffix)", "closebell_tst_\(suffix)")
        try await admin.execute("CREATE DATABASE \(source)")
        try await admin.execute("CREATE DATABASE \(target)")
        await admin.close()
        let info = try ConnectionInfo(parsing: server)
        let sourceURL = info.conninfoString(overriding: ["dbname": source])
        let targetURL = info.conninfoString(overriding: ["dbname": target])
        let setup = try await PostgresConnection.connect(sourceURL)
        try await setup.execute(
            """
            CREATE EXTENSION timescaledb;
            CREATE TABLE ht (id int NOT NULL, at timestamptz NOT NULL, symbol text NOT NULL);
            SELECT create_hypertable('ht', 'at', chunk_time_interval => interval '7 days');
            INSERT INTO ht SELECT g, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 hour', 'S' || (g % 4) FROM generate_series(0, 24 * 40 - 1) g;
            ALTER TABLE ht SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol');
            SELECT count(compress_chunk(c)) FROM show_chunks('ht', older_than => timestamptz '2026-01-22') c;
            """)
        await setup.close()
        let other = try await PostgresConnection.connect(targetURL)
        try await other.execute("CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (1)")
        await other.close()

        let folder = try BackupFixtures.folder()
        let backup = try await BackupRunner(settings: BackupSettings(directory: folder)).run(conninfo: sourceURL)
        let restored = try await BackupCatalog(settings: BackupSettings(directory: folder)).restore(
            path: backup.path, into: target, conninfo: server, force: true)
        XCTAssertTrue(restored.replaced)
        let conn = try await PostgresConnection.connect(targetURL)
        let row = try await conn.query(
            """
            SELECT (SELECT count(*) FROM ht) AS n,
                   (SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'ht' AND is_compressed) AS compressed,
                   current_setting('timescaledb.restoring') AS restoring
            """).first
        await conn.close()
        XCTAssertEqual(try row?.decode("n", as: Int.self), 24 * 40)
        XCTAssertEqual(try row?.decode("compressed", as: Int.self), 3)
        XCTAssertEqual(row?["restoring"], "off")
    }

    func testRestoreIntoTheMaintenanceDatabaseIsRefused() async throws {
        let folder = try BackupFixtures.folder()
        let error = await expectBackupError {
            try await BackupCatalog(settings: BackupSettings(directory: folder)).restore(
                path: folder.appendingPathComponent("x.sql.gz").path, into: "postgres", conninfo: "", force: true)
        }
        XCTAssertEqual(error?.stage, .configuration)
    }
}

private extension String {
    /// Appends the text to a file.
    func appendLine(toFile path: String) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(utf8))
    }
}
