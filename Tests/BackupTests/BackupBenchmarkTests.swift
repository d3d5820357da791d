import Benchmarks
import Foundation
import PostgresClient
import TestSupport
import XCTest

@testable import Backup

/// Runs `BackupBenchmark` on generated data. Skipped unless `CLOSEBELL_BENCH_BACKUP_MB` is set
/// (to the approximate database size wanted, e.g. 300; `CLOSEBELL_BENCH_BACKUP_LEVEL` sets the
/// compression level); prints the figures, asserts no timing.
final class BackupBenchmarkTests: XCTestCase {
    override class func tearDown() {
        BackupFixtures.removeFolders()
        super.tearDown()
    }

    func testBenchmarkReportOnGeneratedRows() async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let text = environment["CLOSEBELL_BENCH_BACKUP_MB"], let megabytes = Int(text), megabytes > 0 else {
            throw XCTSkip("set CLOSEBELL_BENCH_BACKUP_MB=300 to run the backup benchmark")
        }
        let db = try TestCluster.freshDatabase("bkbench")
        let conn = try await PostgresConnection.connect(db.url)
        // About 130 bytes per row on disk: a minute bar with a text column.
        let rows = megabytes * 1_000_000 / 130
        try await conn.execute("""
            CREATE TABLE bars (symbol text, at timestamptz, open numeric, close numeric, volume bigint, note text);
            INSERT INTO bars
            SELECT 'SYM' || (i % 500), timestamptz '2020-01-01 00:00:00+00' + i * interval '1 minute',
                   round((random() * 1000)::numeric, 4), round((random() * 1000)::numeric, 4),
                   (random() * 1e6)::bigint, md5(i::text)
            FROM generate_series(1, \(rows)) AS i;
            """)
        try await conn.execute("VACUUM ANALYZE bars")
        await conn.close()
        let folder = try BackupFixtures.folder("bench")
        var settings = BackupSettings(directory: folder)
        if let level = environment["CLOSEBELL_BENCH_BACKUP_LEVEL"].flatMap(Int.init) { settings.compressionLevel = level }
        let report = try await BackupBenchmark.run(conninfo: db.url, directory: folder, settings: settings)
        print(report)
        XCTAssertGreaterThan(report.fileBytes, 0)
        XCTAssertTrue(try BackupNaming.list(directory: folder).isEmpty, "the benchmark deletes its backup")
    }
}
