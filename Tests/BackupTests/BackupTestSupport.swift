import Foundation
import PostgresClient
import TestSupport
import XCTest

@testable import Backup

/// Helpers shared by the backup tests.
enum BackupFixtures {
    /// A new empty folder under the temporary directory.
    static func folder(_ name: String = "backups") throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("closebell-backup-test-\(getpid())-\(UUID().uuidString.prefix(8))")
            .appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Removes the folders `folder()` created in this process.
    static func removeFolders() {
        let temporary = FileManager.default.temporaryDirectory
        let prefix = "closebell-backup-test-\(getpid())-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? [] where name.hasPrefix(prefix) {
            try? FileManager.default.removeItem(at: temporary.appendingPathComponent(name))
        }
    }

    /// A migrated database with a few tables of generated rows (with NULLs, quotes, unicode,
    /// numerics, timestamps and jsonb), plus a few queue rows.
    static func populatedDatabase(rows: Int = 2000) async throws -> (url: String, name: String) {
        let db = try TestCluster.migratedDatabase("bk")
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("""
            CREATE SCHEMA market;
            CREATE TABLE market.bars (
                symbol text NOT NULL, at timestamptz NOT NULL, open numeric(18,6), close numeric(18,6),
                volume bigint, note text, PRIMARY KEY (symbol, at));
            INSERT INTO market.bars
            SELECT 'SYM' || (i % 17), timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute',
                   (i * 1.25)::numeric, (i * 1.5)::numeric, i * 100,
                   CASE WHEN i % 7 = 0 THEN NULL WHEN i % 5 = 0 THEN 'it''s "quoted"\\ é ✓' ELSE md5(i::text) END
            FROM generate_series(1, \(rows)) AS i;
            CREATE TABLE public.notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body jsonb, tags text[]);
            INSERT INTO public.notes (body, tags)
            SELECT jsonb_build_object('n', i, 's', repeat('x', i % 50)), ARRAY['a' || i, 'b']
            FROM generate_series(1, 300) AS i;
            INSERT INTO maintenance_jobs (task, args) VALUES ('backup', '{"keep": 3}'), ('backup', '{"label": "monthly"}');
            """)
        await conn.close()
        return db
    }

    /// Row count and an md5 of every row's text, per user table, ordered by table name.
    static func tableChecksums(_ url: String) async throws -> [String: String] {
        let conn = try await PostgresConnection.connect(url)
        let tables = try await conn.query("""
            SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables
            WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1
            """).map { try $0.decode("name", as: String.self) }
        var result: [String: String] = [:]
        for table in tables {
            let row = try await conn.query(
                "SELECT count(*) AS n, md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) AS sum FROM \(table) t").first
            result[table] = "\(try row!.decode("n", as: Int64.self)) rows, md5 \(try row!.decode("sum", as: String.self))"
        }
        await conn.close()
        return result
    }

    /// Creates empty files with backup names of `database` (and `label`) at the given UTC times.
    @discardableResult
    static func fakeBackups(in folder: URL, database: String, stamps: [String], label: String? = nil) throws -> [String] {
        try stamps.map { stamp in
            let name = "\(BackupNaming.fileComponent(database))_\(stamp)\(label.map { "+\($0)" } ?? "").sql.gz"
            let path = folder.appendingPathComponent(name).path
            guard FileManager.default.createFile(atPath: path, contents: Data("old".utf8)) else {
                throw CocoaError(.fileWriteUnknown)
            }
            return path
        }
    }

    /// The sorted file names in a folder (hidden ones included).
    static func names(_ folder: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
    }

    /// An executable shell script in a new folder.
    static func script(_ body: String) throws -> String {
        let path = try folder("bin").appendingPathComponent("pg_dump_wrapper.sh").path
        try ("#!/bin/sh\n" + body + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    /// The real pg_dump of the test cluster.
    static var realPgDump: String {
        get throws { try TestCluster.shared().programPath("pg_dump") }
    }
}

extension XCTestCase {
    /// Asserts that `body` throws a `BackupError` and returns it.
    func expectBackupError<T>(
        _ body: () async throws -> T, file: StaticString = #filePath, line: UInt = #line
    ) async -> BackupError? {
        do {
            _ = try await body()
            XCTFail("expected a BackupError, got success", file: file, line: line)
        } catch let error as BackupError {
            return error
        } catch {
            XCTFail("expected a BackupError, got \(type(of: error)): \(error)", file: file, line: line)
        }
        return nil
    }
}
