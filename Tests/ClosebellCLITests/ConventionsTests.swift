import Foundation
import LocalCluster
import PostgresClient
import TestSupport
import XCTest

/// What an operator's tools rely on: exit codes, --version, secrets, environment overrides,
/// cycles that wait for their time, and children that inherit nothing they should not.
final class ConventionsTests: XCTestCase {
    private var folder: ScratchFolder!
    private var scratch: URL { folder.url }

    override func setUpWithError() throws { folder = try ScratchFolder("conv") }
    override func tearDown() { folder = nil }

    private func write(_ name: String, _ text: String, mode: Int = 0o600) throws -> String {
        let path = scratch.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, mode_t(mode))
        return path
    }

    func testVersionUsageConfigAndUnreachableDatabaseExitCodes() throws {
        let version = try ClosebellBinary.run(["--version"])
        XCTAssertEqual(version.status, 0)
        XCTAssertTrue(version.output.range(of: #"^\d+\.\d+\.\d+\s*$"#, options: .regularExpression) != nil, version.output)

        let unknownFlag = try ClosebellBinary.run(["worker", "--no-such-flag"])
        XCTAssertEqual(unknownFlag.status, 64, unknownFlag.output)

        let malformed = try write("bad.yml", "worker: [concurrency: 4\n")
        let bad = try ClosebellBinary.run(["worker", "--config", malformed], environment: ["DATABASE_URL": "postgresql://127.0.0.1:1/none"])
        XCTAssertEqual(bad.status, 78, bad.output)
        XCTAssertTrue(bad.output.contains("not valid YAML"), bad.output)

        let wrongType = try write("type.yml", "worker:\n  concurrency: many\n")
        let typed = try ClosebellBinary.run(["worker", "--config", wrongType])
        XCTAssertEqual(typed.status, 78, typed.output)
        XCTAssertTrue(typed.output.contains("worker.concurrency"), typed.output)

        // A secret of the wrong type is refused without showing it.
        let secretType = try write("secret.yml", "http:\n  trigger_token: 918273645\n")
        let secret = try ClosebellBinary.run(["worker", "--config", secretType])
        XCTAssertEqual(secret.status, 78, secret.output)
        XCTAssertTrue(secret.output.contains("http.trigger_token"), secret.output)
        XCTAssertFalse(secret.output.contains("918273645"), secret.output)

        // An environment override is validated like the file, and names its variable.
        let override = try ClosebellBinary.run(["worker"], environment: ["CLOSEBELL_WORKER_CONCURRENCY": "0"])
        XCTAssertEqual(override.status, 78, override.output)
        XCTAssertTrue(override.output.contains("CLOSEBELL_WORKER_CONCURRENCY (worker.concurrency)"), override.output)
        let typo = try ClosebellBinary.run(["worker"], environment: ["CLOSEBELL_WORKER_CONCURENCY": "4"])
        XCTAssertEqual(typo.status, 78, typo.output)

        // A secret file that cannot be read, and a secret given twice.
        let missing = try ClosebellBinary.run(["status"], environment: ["POLYGON_API_KEY_FILE": scratch.appendingPathComponent("nope").path])
        XCTAssertEqual(missing.status, 78, missing.output)
        XCTAssertTrue(missing.output.contains("POLYGON_API_KEY_FILE"), missing.output)
        let keyFile = try write("key", "file-key-5551212\n")
        let twice = try ClosebellBinary.run(["status"], environment: ["POLYGON_API_KEY": "env-key-4441212", "POLYGON_API_KEY_FILE": keyFile])
        XCTAssertEqual(twice.status, 78, twice.output)
        XCTAssertFalse(twice.output.contains("4441212") || twice.output.contains("5551212"), twice.output)

        // Nothing listens on the port: the worker stops at once with 69.
        let port = try LocalCluster.freePort()
        let unreachable = try ClosebellBinary.run(["worker"], environment: ["DATABASE_URL": "postgresql://closebell@127.0.0.1:\(port)/none?connect_timeout=3"])
        XCTAssertEqual(unreachable.status, 69, unreachable.output)
        // Overrides read as text unless they are numbers, booleans or flow collections: 20:00
        // stays a time (not YAML 1.1's base 60), a list is a list; the config is accepted.
        let accepted = try ClosebellBinary.run(["worker"], environment: [
            "DATABASE_URL": "postgresql://closebell@127.0.0.1:\(port)/none?connect_timeout=3", "CLOSEBELL_ALERTS_DAILY_DEADLINE": "20:00",
            "CLOSEBELL_VACUUM_TABLES": "[market_data_daily, volume_slots]", "CLOSEBELL_WORKER_LEASE_SECONDS": "1.5e1",
        ])
        XCTAssertEqual(accepted.status, 69, accepted.output)
    }

    func testSecretsFromFilesAndCredentialsAndOverridePrecedence() async throws {
        let db = try TestCluster.migratedDatabase()
        // DATABASE_URL_FILE, then a systemd credential, reach the database.
        let urlFile = try write("database_url", db.url + "\n")
        let viaFile = try ClosebellBinary.run(["enqueue", "noop"], environment: ["DATABASE_URL_FILE": urlFile])
        XCTAssertEqual(viaFile.status, 0, viaFile.output)
        let credentials = scratch.appendingPathComponent("credentials")
        try FileManager.default.createDirectory(at: credentials, withIntermediateDirectories: true)
        try db.url.write(to: credentials.appendingPathComponent("database_url"), atomically: true, encoding: .utf8)
        let viaCredential = try ClosebellBinary.run(["enqueue", "noop"], environment: ["CREDENTIALS_DIRECTORY": credentials.path])
        XCTAssertEqual(viaCredential.status, 0, viaCredential.output)
        let conn = try await PostgresConnection.connect(db.url)
        let queued = try await conn.query("SELECT count(*) AS n FROM maintenance_jobs").first?.decode("n", as: Int.self)
        XCTAssertEqual(queued, 2)

        // Defaults < file < CLOSEBELL_<SECTION>_<KEY> < flags, seen in worker_started.
        let config = try write("closebell.yml", "worker:\n  concurrency: 3\n  queue: from-file\n")
        func started(_ arguments: [String], _ environment: [String: String]) throws -> [String: Any] {
            let run = try ClosebellBinary.run(
                ["worker", "--config", config, "--exit-when-idle", "0.2", "--log-format", "json"] + arguments,
                environment: ["DATABASE_URL": db.url].merging(environment) { $1 })
            XCTAssertEqual(run.status, 0, run.output)
            let line = run.output.split(separator: "\n").first { $0.contains("worker_started") } ?? ""
            return (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
        }
        func concurrency(_ fields: [String: Any]) -> String { fields["concurrency"].map { "\($0)" } ?? "?" }
        XCTAssertEqual(concurrency(try started([], [:])), "3")
        let fromEnvironment = try started([], ["CLOSEBELL_WORKER_CONCURRENCY": "5"])
        XCTAssertEqual(concurrency(fromEnvironment), "5")
        XCTAssertEqual(fromEnvironment["queue"].map { "\($0)" }, "from-file")
        XCTAssertEqual(concurrency(try started(["--concurrency", "7"], ["CLOSEBELL_WORKER_CONCURRENCY": "5"])), "7")
        await conn.close()
    }

    func testDailyCycleFromTheCommandLineWaitsForItsTime() async throws {
        let db = try TestCluster.migratedDatabase()
        let env = ["DATABASE_URL": db.url]
        // Monday 7 December 2026, 10:00 in New York: a trading day, before the 17:00 close run.
        let morning = "2026-12-07T10:00:00-05:00"
        let early = try ClosebellBinary.run(["enqueue", "--cycle", "daily", "--at", morning], environment: env)
        XCTAssertEqual(early.status, 0, early.output)
        XCTAssertTrue(early.output.contains("not due until 17:00"), early.output)
        let conn = try await PostgresConnection.connect(db.url)
        var runs = try await conn.query("SELECT count(*) AS n FROM maintenance_cycle_runs").first?.decode("n", as: Int.self)
        XCTAssertEqual(runs, 0)
        let forced = try ClosebellBinary.run(["enqueue", "--cycle", "daily", "--at", morning, "--force"], environment: env)
        XCTAssertEqual(forced.status, 0, forced.output)
        XCTAssertTrue(forced.output.hasPrefix("enqueued daily cycle run"), forced.output)
        runs = try await conn.query("SELECT count(*) AS n FROM maintenance_cycle_runs WHERE period = '2026-12-07'").first?.decode("n", as: Int.self)
        XCTAssertEqual(runs, 1)
        await conn.close()
    }

    /// The acceptance check of issue 11: pg_dump and the compressor, started by a worker that
    /// holds database connections and a listening socket, ignores SIGPIPE, traps SIGTERM and has
    /// the API key in its environment, see none of it. pg_dump is held on a table lock while
    /// the test reads /proc/PID of both children.
    func testBackupChildrenSeeNoSecretNoSocketAndDefaultSignals() async throws {
        let db = try TestCluster.migratedDatabase()
        let holder = try await PostgresConnection.connect(db.url)
        try await holder.execute("CREATE TABLE hold_backup (id int)")
        try await holder.execute("BEGIN; LOCK TABLE hold_backup IN ACCESS EXCLUSIVE MODE")
        // The server trusts loopback; the password only has to reach pg_dump as a file.
        let withPassword = db.url.replacingOccurrences(of: "closebell@", with: "closebell:pw-secret-4242@")
        let backups = scratch.appendingPathComponent("backups").path
        let config = try write("closebell.yml", "backup:\n  directory: \(backups)\n")
        let port = try LocalCluster.freePort()
        let log = scratch.appendingPathComponent("worker.log").path
        let worker = try ClosebellBinary.start(
            ["worker", "--config", config, "--http", "127.0.0.1:\(port)", "--poll", "0.2", "--log-format", "json"],
            environment: ["DATABASE_URL": withPassword, "POLYGON_API_KEY": "secret-polygon-key-777",
                          "MASSIVE_API_KEY": "secret-massive-key-888", "CLOSEBELL_TRIGGER_TOKEN": "secret-trigger-token-999"],
            logFile: log)
        defer { worker.signal(SIGKILL); worker.wait() }
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("INSERT INTO maintenance_jobs (task) VALUES ('backup')")

        func children() -> [String: pid_t] {
            var found: [String: pid_t] = [:]
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                      let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { continue }
                let name = String(stat[stat.index(after: open)..<close])
                let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
                if fields.count > 1, pid_t(fields[1]) == worker.pid { found[name] = pid }
            }
            return found
        }
        var dump: pid_t?, compressor: pid_t?
        let waiting = try await eventually(timeout: 60) {
            let running = children()
            dump = running["pg_dump"]
            compressor = running["pigz"] ?? running["gzip"]
            let blocked = try await conn.query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'closebell backup' AND wait_event_type = 'Lock'").first?["n"]
            return dump != nil && compressor != nil && blocked == "1"
        }
        XCTAssertTrue(waiting, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
        let pgDump = try XCTUnwrap(dump), compress = try XCTUnwrap(compressor)

        func environment(_ pid: pid_t) throws -> [String: String] {
            let data = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))
            var result: [String: String] = [:]
            for entry in data.split(separator: 0) {
                let text = String(decoding: entry, as: UTF8.self)
                let parts = text.split(separator: "=", maxSplits: 1)
                result[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            return result
        }
        func sockets(_ pid: pid_t) -> Set<String> {
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
            return Set(fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)") }
                .filter { $0.hasPrefix("socket:") })
        }
        func descriptors(_ pid: pid_t) -> [Int] {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap(Int.init).sorted()
        }
        func signalMask(_ pid: pid_t, _ field: String) throws -> UInt64 {
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            let line = status.split(separator: "\n").first { $0.hasPrefix(field + ":") } ?? ""
            return UInt64(line.split(separator: "\t").last ?? "", radix: 16) ?? .max
        }

        let workerSockets = sockets(worker.pid)
        XCTAssertGreaterThanOrEqual(workerSockets.count, 3, "the worker holds its listener and database connections")
        for pid in [pgDump, compress] {
            let env = try environment(pid)
            for secret in ["DATABASE_URL", "POLYGON_API_KEY", "MASSIVE_API_KEY", "CLOSEBELL_TRIGGER_TOKEN", "PGPASSWORD"] {
                XCTAssertNil(env[secret], "\(secret) reached child \(pid)")
            }
            XCTAssertFalse(env.values.contains { $0.contains("secret-") || $0.contains("pw-secret") }, "a secret value reached child \(pid)")
            XCTAssertEqual(sockets(pid).intersection(workerSockets), [], "a socket of the worker leaked into child \(pid)")
            XCTAssertEqual(try signalMask(pid, "SigBlk"), 0, "child \(pid) starts with signals blocked")
            // SIGTERM (15) and SIGPIPE (13) are ignored by the worker, never by a child.
            XCTAssertEqual(try signalMask(pid, "SigIgn") & (1 << 14 | 1 << 12), 0, "child \(pid) inherited ignored signals")
        }
        XCTAssertNotEqual(try signalMask(worker.pid, "SigIgn") & (1 << 12), 0, "the worker ignores SIGPIPE")
        // The compressor has nothing but its pipes and file; pg_dump has its own connection besides.
        XCTAssertEqual(descriptors(compress), [0, 1, 2])
        XCTAssertEqual(try signalMask(compress, "SigIgn"), 0)
        XCTAssertEqual(descriptors(pgDump).filter { $0 > 2 }.count, sockets(pgDump).count)
        let dumpEnv = try environment(pgDump)
        XCTAssertNotNil(dumpEnv["PGPASSFILE"])
        XCTAssertNotNil(dumpEnv["PGDATABASE"])
        let compressEnv = try environment(compress)
        XCTAssertEqual(compressEnv.keys.filter { $0.hasPrefix("PG") }, [], "the compressor gets no connection settings")

        try await holder.execute("ROLLBACK")
        let done = try await eventually(timeout: 60) {
            let state = try await conn.query("SELECT state FROM maintenance_jobs WHERE task = 'backup'").first?["state"]
            return state == "succeeded" || state == "failed"
        }
        XCTAssertTrue(done)
        let state = try await conn.query("SELECT state, errors::text AS errors FROM maintenance_jobs WHERE task = 'backup'").first
        XCTAssertEqual(state?["state"], "succeeded", state?["errors"] ?? "")
        await conn.close()
        await holder.close()
    }
}
