import Backup
import ChildProcess
@testable import Closebell
import Foundation
import JobQueue
import Logging
import MarketDataTasks
import Polygon
import PostgresClient
import SampleMarket
import TestSupport
import Toolkit
import XCTest

/// A trivial task defined here: adding it to a worker takes this type plus one registration line.
struct EchoTask: JobTask {
    static let declaration = TaskDeclaration(
        name: "echo", arguments: ["word": .string, "times": .integer], summary: "Repeats a word.", reports: [.rows])

    struct Args: Decodable {
        var word: String
        var times: Int?
    }

    struct Result: TaskResult {
        var text: String
        var rows: Int
    }

    func run(_ context: JobContext) async throws -> Result {
        let args = try arguments(Args.self, of: context)
        return Result(text: Array(repeating: args.word, count: args.times ?? 1).joined(separator: " "), rows: args.times ?? 1)
    }
}

/// The task registry, `maintenance_task_types` and the result fields SQL reads cannot drift apart.
final class TaskRegistryTests: XCTestCase {
    private func configuration() -> WorkerConfiguration {
        // Every job has max_attempts 1: no retry delays to shorten.
        var c = WorkerConfiguration(workerID: "registry-\(UUID().uuidString.prefix(6))")
        (c.pollSeconds, c.exitWhenIdleSeconds) = (0.2, 1)
        return c
    }

    private let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    private func productRegistry(baseURL: URL = URL(string: "http://127.0.0.1:9")!, apiKey: String = "k", backups: URL) -> TaskRegistry {
        let client = PolygonClient(configuration: PolygonConfiguration(baseURL: baseURL, apiKey: apiKey, requestsPerSecond: 1000))
        return TaskList.registry(source: PolygonMarketDataSource(client: client), settings: TaskList.Settings(backup: BackupSettings(directory: backups)))
    }

    private func scratchFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-registry-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// The migrations' rows equal the declarations of the tasks this build registers, so the
    /// worker's upsert at start changes nothing in a migrated database.
    func testMigratedTaskTypesEqualTheRegistry() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let rows = try await conn.query("SELECT task, arg_types::text AS args, description FROM maintenance_task_types ORDER BY task")
        var stored: [String: (args: [String: String], description: String)] = [:]
        for row in rows {
            let args = try JSONDecoder().decode([String: String].self, from: Data(try row.decode("args", as: String.self).utf8))
            stored[try row.decode("task")] = (args, try row.decode("description"))
        }
        let registry = productRegistry(backups: try scratchFolder())
        XCTAssertEqual(Set(stored.keys), Set(registry.names))
        for declaration in registry.declarations {
            XCTAssertEqual(stored[declaration.name]?.args, declaration.arguments.mapValues(\.rawValue), declaration.name)
            XCTAssertEqual(stored[declaration.name]?.description, declaration.summary, declaration.name)
        }
        let changed = try await conn.withSession { try registry.publish($0) }
        XCTAssertEqual(changed, [], "publishing the registry into a migrated database changes nothing")
        await conn.close()
    }

    /// A task defined in this file, registered with one line: the worker publishes it, a psql
    /// INSERT of it is accepted, a wrong key is refused with SQLSTATE 22023, and the worker runs it.
    func testATaskAddedWithOneRegistrationLineIsAcceptedValidatedAndRun() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let registry = TaskRegistry([NoopTask(), EchoTask()])
        // A first worker publishes the new task's row at start (an idle queue: it stops at once).
        try await Worker(conninfo: db.url, registry: registry, configuration: configuration(), logger: logger).run()
        let psql = try await ChildProcess.run("psql", ["-X", "-v", "ON_ERROR_STOP=1", db.url, "-qc",
                                                 #"INSERT INTO maintenance_jobs (task, args) VALUES ('echo', '{"word": "bell", "times": 3}')"#])
        XCTAssertEqual(psql.status, 0, psql.output)
        do {
            try await conn.execute(#"INSERT INTO maintenance_jobs (task, args) VALUES ('echo', '{"wrod": "bell"}')"#)
            XCTFail("a key the declaration does not list was accepted")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, "22023")
        }
        do {
            try await conn.execute(#"INSERT INTO maintenance_jobs (task, args) VALUES ('echo', '{"times": "3"}')"#)
            XCTFail("a string for an integer argument was accepted")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, "22023")
        }
        try await Worker(conninfo: db.url, registry: registry, configuration: configuration(), logger: logger).run()
        let row = try await conn.query("SELECT state, result ->> 'text' AS text, jsonb_typeof(result -> 'rows') AS rows FROM maintenance_jobs WHERE task = 'echo'").first
        XCTAssertEqual(row?["state"], "succeeded")
        XCTAssertEqual(row?["text"], "bell bell bell")
        XCTAssertEqual(row?["rows"], ResultField.rows.jsonType)
        await conn.close()
    }

    /// Every key of `result` that SQL reads is a `ResultField`: the queue's reads for the report,
    /// the metrics, the dashboard and the demo (`QueueStore`) spell keys only through
    /// `ResultField`, and any key written out in Swift or in sql/ and migrations/ must be one.
    func testEveryResultKeySQLReadsIsAResultField() throws {
        let root = TestCluster.repositoryRoot
        var files: [URL] = []
        for folder in ["Sources/JobQueue", "Sources/Operations", "Sources/Closebell", "sql", "migrations"] {
            let url = root.appendingPathComponent(folder)
            for name in try FileManager.default.contentsOfDirectory(atPath: url.path) { files.append(url.appendingPathComponent(name)) }
        }
        let pattern = try NSRegularExpression(pattern: #"result\s*->>?\s*'([a-z_]+)'"#)
        var keys = Set<String>()
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                keys.insert(String(text[Range(match.range(at: 1), in: text)!]))
            }
        }
        let sample = "SELECT result ->> 'rows_written', result -> 'bytes'"
        XCTAssertEqual(pattern.numberOfMatches(in: sample, range: NSRange(sample.startIndex..., in: sample)), 2, "the scan finds keys")
        let known = Set(ResultField.allCases.map(\.rawValue))
        XCTAssertEqual(keys.subtracting(known), [], "keys read from maintenance_jobs.result that ResultField does not define")
    }

    /// Runs every registered task (real database, sample Polygon server, real worker) and checks
    /// that each stored result has the standard fields its declaration lists, with their JSON types.
    func testEveryTaskStoresTheResultFieldsItDeclares() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let data = SampleMarketData(symbols: 4, from: CivilDate("2025-03-03")!, through: CivilDate("2025-03-14")!)
        let server = try SamplePolygonServer.start(data: data, options: SampleServerOptions(apiKey: "registry-key"))
        defer { server.stop() }
        try await SampleUniverse.seed(conn, symbols: data.symbols)
        let registry = productRegistry(baseURL: server.baseURL, apiKey: "registry-key", backups: try scratchFolder())
        let range = #"{"from": "2025-03-10", "to": "2025-03-14"}"#
        let args = ["ohlc_daily": range, "volume_slots": range, "backfill": range]
        for name in registry.names {
            try await conn.query("INSERT INTO maintenance_jobs (task, args, max_attempts) VALUES ($1, $2::jsonb, 1)", [name, args[name] ?? "{}"])
        }
        try await Worker(conninfo: db.url, registry: registry, configuration: configuration(), logger: logger).run()
        for declaration in registry.declarations {
            let row = try await conn.query(
                "SELECT state, errors::text AS errors, result::text AS result FROM maintenance_jobs WHERE task = $1", [declaration.name]).first
            XCTAssertEqual(row?["state"], "succeeded", "\(declaration.name): \(row?["errors"] ?? "")")
            for field in declaration.reports {
                let type = try await conn.query(
                    "SELECT jsonb_typeof(result -> $2) AS t FROM maintenance_jobs WHERE task = $1", [declaration.name, field.rawValue]).first?["t"]
                XCTAssertEqual(type, field.jsonType, "\(declaration.name).\(field.rawValue) in \(row?["result"] ?? "")")
            }
        }
        await conn.close()
    }
}
