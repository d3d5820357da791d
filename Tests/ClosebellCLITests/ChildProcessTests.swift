import ChildProcess
import Foundation
import TestSupport
import XCTest

/// The one spawn helper: environments built on purpose, and waits that stop the programs when
/// the task is cancelled (SIGTERM, then SIGKILL after the grace).
final class ChildProcessTests: XCTestCase {
    private var folder: ScratchFolder!
    private var scratch: URL { folder.url }

    override func setUpWithError() throws { folder = try ScratchFolder("child") }
    override func tearDown() { folder = nil }

    func testEnvironmentsLeaveTheSecretsBehind() {
        let parent = [
            "PATH": "/usr/bin:/bin", "HOME": "/home/op", "LANG": "C.UTF-8", "LC_TIME": "C", "TZ": "UTC",
            "DATABASE_URL": "postgresql://u:pw@h/db", "DATABASE_URL_FILE": "/run/secrets/database_url",
            "POLYGON_API_KEY": "k", "MASSIVE_API_KEY": "k", "CLOSEBELL_TRIGGER_TOKEN": "t", "CLOSEBELL_ALERT_WEBHOOK_URL": "https://hook",
            "CLOSEBELL_HTTP_TRIGGER_TOKEN": "t", "CREDENTIALS_DIRECTORY": "/run/credentials/x", "CLOSEBELL_CONFIG": "/etc/c.yml",
            "PGHOST": "db.example", "PGSSLMODE": "verify-full", "PGPASSWORD": "pw", "SOMETHING_ELSE": "x",
        ]
        XCTAssertEqual(ChildEnvironment.base(from: parent), ["PATH": "/usr/bin:/bin", "HOME": "/home/op", "LANG": "C.UTF-8", "LC_TIME": "C", "TZ": "UTC"])

        let postgres = ChildEnvironment.postgres(connection: ["PGDATABASE": "market", "PGHOST": "other"], passfile: "/tmp/pass", from: parent)
        XCTAssertEqual(postgres["PGDATABASE"], "market")
        XCTAssertEqual(postgres["PGHOST"], "other", "the connection string wins over the inherited PG* variables")
        XCTAssertEqual(postgres["PGSSLMODE"], "verify-full")
        XCTAssertEqual(postgres["PGPASSFILE"], "/tmp/pass")
        XCTAssertNil(postgres["PGPASSWORD"], "PGPASSWORD would win over the file")
        XCTAssertEqual(Set(postgres.keys).intersection(ChildEnvironment.secretNames), [])
        XCTAssertNil(postgres["SOMETHING_ELSE"])

        let inherited = ChildEnvironment.inherited(["POLYGON_API_KEY": "given on purpose", "TZ": nil], from: parent)
        XCTAssertEqual(inherited["POLYGON_API_KEY"], "given on purpose")
        XCTAssertNil(inherited["DATABASE_URL"])
        XCTAssertNil(inherited["CREDENTIALS_DIRECTORY"])
        XCTAssertNil(inherited["TZ"])
        XCTAssertEqual(inherited["SOMETHING_ELSE"], "x")
    }

    /// Starts `script` under /bin/sh once it has written `ready`, so a cancellation finds its
    /// trap in place.
    private func readyScript(_ body: String) -> (arguments: [String], ready: String) {
        let ready = scratch.appendingPathComponent("ready-\(UUID().uuidString)").path
        return (["-c", "\(body); : > '\(ready)'; while :; do sleep 1; done"], ready)
    }

    func testCancellingAWaitStopsTheChildWithSigtermThenSigkill() async throws {
        for (body, expected) in [("true", ExitStatus.signaled(SIGTERM)), ("trap '' TERM", ExitStatus.signaled(SIGKILL))] {
            let (arguments, ready) = readyScript(body)
            let child = try ChildProcess.spawn("/bin/sh", arguments)
            let waiting = Task { await child.waitUntilExit(killGrace: 0.2) }
            let started = try await eventually(timeout: 20) { FileManager.default.fileExists(atPath: ready) }
            XCTAssertTrue(started)
            waiting.cancel()
            let status = await waiting.value
            XCTAssertEqual(status, expected, "script: \(body)")
            XCTAssertEqual(kill(child.pid, 0), -1, "the child was reaped")
        }
    }

    func testCancellingAPipelineStopsEveryProgram() async throws {
        let (arguments, ready) = readyScript("trap '' TERM")
        let commands = [
            ChildCommand(executable: "/bin/sh", arguments: arguments, environment: ChildEnvironment.base()),
            ChildCommand(executable: "cat", arguments: [], environment: ChildEnvironment.base()),
        ]
        let running = Task { try await Pipeline.run(commands, timeout: nil, killGrace: 0.2) }
        let started = try await eventually(timeout: 20) { FileManager.default.fileExists(atPath: ready) }
        XCTAssertTrue(started)
        running.cancel()
        let outcome = try await running.value
        XCTAssertTrue(outcome.cancelled)
        XCTAssertEqual(outcome.children.map(\.status), [.signaled(SIGKILL), .signaled(SIGTERM)])
    }

    func testProgramLookup() throws {
        XCTAssertEqual(findOnPath("sh").map { URL(fileURLWithPath: $0).lastPathComponent }, "sh")
        XCTAssertNil(findOnPath("closebell-no-such-program"))
        XCTAssertEqual(findOnPath("/bin/sh"), "/bin/sh")
        let dump = PostgresPrograms.path(of: "pg_dump", serverVersion: 160_004)
        XCTAssertTrue(dump == "pg_dump" || FileManager.default.isExecutableFile(atPath: dump), dump)
        let server = try XCTUnwrap(PostgresPrograms.serverDirectory(), "the test cluster needs initdb")
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: server.appendingPathComponent("initdb").path))
    }
}
