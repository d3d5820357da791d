import ChildProcess
import Foundation
import LocalCluster
import PostgresClient
import SchemaMigrations

/// The private PostgreSQL cluster shared by every test in this process.
///
/// Started on first use in a temporary folder on a free port, stopped and deleted when the
/// process exits (normally or by a failed assertion), so no server outlives the suite.
public enum TestCluster {
    fileprivate static let lock = NSLock()
    nonisolated(unsafe) private static var cluster: LocalCluster?
    nonisolated(unsafe) fileprivate static var counter = 0
    nonisolated(unsafe) fileprivate static var templateReady = false

    /// The running shared cluster.
    public static func shared() throws -> LocalCluster {
        lock.lock()
        defer { lock.unlock() }
        if let cluster { return cluster }
        removeClustersOfDeadProcesses()
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("closebell-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let created = try LocalCluster(directory: directory)
        try created.start()
        cluster = created
        atexit {
            TestCluster.cluster?.destroy()
        }
        return created
    }

    /// Stops and deletes clusters left behind by test processes that were killed (SIGKILL or a
    /// timeout skips the exit handler): their folder names carry the dead process's id.
    private static func removeClustersOfDeadProcesses() {
        let temporary = FileManager.default.temporaryDirectory
        let names = (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? []
        for name in names where name.hasPrefix("closebell-test-") {
            let parts = name.split(separator: "-")
            guard parts.count == 4, let pid = pid_t(parts[2]), pid != getpid() else { continue }
            if kill(pid, 0) == 0 || errno != ESRCH { continue }
            let directory = temporary.appendingPathComponent(name)
            (try? LocalCluster(directory: directory))?.destroy()
        }
    }

    /// Creates an empty database with a unique name and returns its connection URL.
    public static func freshDatabase(_ prefix: String = "t") throws -> (url: String, name: String) {
        let cluster = try shared()
        lock.lock()
        counter += 1
        let name = "\(prefix.lowercased())_\(getpid())_\(counter)"
        lock.unlock()
        try cluster.createDatabaseIfMissing(name)
        return (cluster.url(database: name), name)
    }
}

extension TestCluster {
    /// The repository's `migrations/` folder.
    public static var migrationsDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("migrations")
    }

    /// The repository's root folder.
    public static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// Creates a database with every migration applied (copied from a template database that
    /// is migrated once per process) and returns its connection URL.
    public static func migratedDatabase(_ prefix: String = "m") throws -> (url: String, name: String) {
        let cluster = try shared()
        try templateOnce(cluster)
        lock.lock()
        counter += 1
        let name = "\(prefix.lowercased())_\(getpid())_\(counter)"
        lock.unlock()
        try cluster.createDatabaseIfMissing(name, template: "closebell_template")
        return (cluster.url(database: name), name)
    }

    private static func templateOnce(_ cluster: LocalCluster) throws {
        lock.lock()
        defer { lock.unlock() }
        if templateReady { return }
        try cluster.createDatabaseIfMissing("closebell_template")
        let session = try PostgresSession(conninfo: cluster.url(database: "closebell_template"))
        let migrator = try Migrator(directory: migrationsDirectory)
        do {
            _ = try Migrator.migrate(session, files: migrator.files)
            session.close()
        } catch {
            session.close()
            throw error
        }
        try closeToConnections("closebell_template", cluster)
        templateReady = true
    }

    /// Makes a template database refuse connections, as template0 does, and waits until no
    /// session is left on it. With TimescaleDB preloaded its launcher otherwise restarts a
    /// scheduler on the template at every CREATE DATABASE … TEMPLATE, which then fails with
    /// "source database is being accessed by other users".
    private static func closeToConnections(_ name: String, _ cluster: LocalCluster) throws {
        let admin = try PostgresSession(conninfo: cluster.url(database: "postgres"))
        defer { admin.close() }
        try admin.execute("ALTER DATABASE \(PostgresSession.quoteIdentifier(name)) WITH ALLOW_CONNECTIONS false")
        for _ in 0..<400 {
            let others: Int = try admin.query("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1", [name])
                .first?.decode("n") ?? 0
            if others == 0 { return }
            usleep(50_000)
        }
    }
}

extension TestCluster {
    /// True when the shared cluster preloads TimescaleDB (LocalCluster does so when the
    /// extension is installed on this machine). Tests of the TimescaleDB paths skip otherwise.
    public static func timescaleAvailable() throws -> Bool {
        let session = try PostgresSession(conninfo: try shared().url(database: "postgres"))
        defer { session.close() }
        return try session.query(
            """
            SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
                   AND 'timescaledb' = ANY(string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')) AS ok
            """
        ).first?.decode("ok") ?? false
    }

    /// Creates a database with the `timescaledb` extension created before every migration
    /// runs (so 0002 makes hypertables) and returns its connection URL. Each one is migrated
    /// on its own: TimescaleDB's scheduler stays connected to a database with the extension,
    /// so such a database cannot serve as a template. Call only when `timescaleAvailable()`.
    public static func timescaleDatabase(_ prefix: String = "ts", on cluster: LocalCluster? = nil) throws -> (url: String, name: String) {
        let cluster = try cluster ?? shared()
        lock.lock()
        counter += 1
        let name = "\(prefix.lowercased())_\(getpid())_\(counter)"
        lock.unlock()
        try cluster.createDatabaseIfMissing(name)
        let url = cluster.url(database: name)
        let session = try PostgresSession(conninfo: url)
        defer { session.close() }
        try session.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        let migrator = try Migrator(directory: migrationsDirectory)
        _ = try Migrator.migrate(session, files: migrator.files)
        return (url, name)
    }
}

/// Runs the built `closebell` executable, for tests of whole processes.
public enum ClosebellBinary {
    /// The executable next to the test bundle (`.build/debug/closebell`).
    public static var path: String {
        let bundle = Bundle.main.bundleURL
        let candidates = [
            bundle.deletingLastPathComponent().appendingPathComponent("closebell").path,
            bundle.appendingPathComponent("closebell").path,
            TestCluster.repositoryRoot.appendingPathComponent(".build/debug/closebell").path,
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }

    /// Starts `closebell` with arguments and extra environment; output goes to `logFile`.
    public static func start(_ arguments: [String], environment: [String: String] = [:], logFile: String) throws -> ChildProcess {
        try ChildProcess.spawn(path, arguments, environment: environment.mapValues { Optional($0) }, outputPath: logFile)
    }

    /// Runs `closebell` to completion and returns its exit status and combined output.
    public static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-run-\(UUID().uuidString).log").path
        defer { unlink(log) }
        let child = try start(arguments, environment: environment, logFile: log)
        let status = child.wait()
        return (status, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }
}
