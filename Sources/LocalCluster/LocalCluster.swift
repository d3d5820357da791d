import ChildProcess
import Foundation
import PostgresClient

/// A private PostgreSQL cluster in a folder of its own, started with `initdb` and `pg_ctl`
/// from the `postgresql` package, listening on 127.0.0.1 on a free port.
///
/// Tests, the demo and the benchmarks use it; nothing in the worker needs it. When the
/// process runs as root, the server runs as the `postgres` user, as PostgreSQL requires.
public final class LocalCluster: Sendable {
    /// The cluster's folder; the data directory is `directory/data`.
    public let directory: URL
    /// The TCP port on 127.0.0.1.
    public let port: Int
    /// The superuser role created by `initdb`.
    public let superuser = "closebell"
    /// The folder holding `initdb`, `pg_ctl` and `postgres`.
    public let binDirectory: URL

    /// The data directory.
    public var dataDirectory: URL { directory.appendingPathComponent("data") }
    /// The server log file.
    public var logFile: URL { directory.appendingPathComponent("server.log") }

    /// Prepares (does not start) a cluster in `directory`. A cluster already there keeps its
    /// port (recorded in `directory/port`) unless `port` is given.
    public init(directory: URL, port: Int? = nil) throws {
        self.directory = directory
        self.binDirectory = try Self.findBinDirectory()
        let portFile = directory.appendingPathComponent("port")
        if let port {
            self.port = port
        } else if let text = try? String(contentsOf: portFile, encoding: .utf8), let saved = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            self.port = saved
        } else {
            self.port = try Self.freePort()
        }
    }

    /// A connection URL for `database` on this cluster (trust authentication on loopback).
    public func url(database: String = "closebell") -> String {
        "postgresql://\(superuser)@127.0.0.1:\(port)/\(database)"
    }

    /// True when the server answers.
    public var isRunning: Bool {
        (try? run("pg_ctl", ["-D", dataDirectory.path, "status"]))?.status == 0
    }

    /// Creates the cluster when it does not exist, starts it when it is not running, and
    /// creates the database `closebell`.
    public func start() throws {
        let fm = FileManager.default
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        try String(port).write(to: directory.appendingPathComponent("port"), atomically: true, encoding: .utf8)
        let asRoot = geteuid() == 0
        if asRoot { try chownToPostgres(directory) }
        if !fm.fileExists(atPath: dataDirectory.appendingPathComponent("PG_VERSION").path) {
            let result = try run("initdb", [
                "-D", dataDirectory.path, "-U", superuser, "--auth=trust", "-E", "UTF8",
                "--locale=C", "--no-sync",
            ])
            guard result.status == 0 else { throw LocalClusterError.commandFailed("initdb", result.output) }
            let settings = """

                # closebell private cluster
                listen_addresses = '127.0.0.1'
                unix_socket_directories = '\(directory.path)'
                max_connections = 300
                shared_buffers = 256MB
                wal_level = minimal
                max_wal_senders = 0
                max_wal_size = 2GB
                logging_collector = off
                log_min_messages = warning
                autovacuum_naptime = 10s
                \(Self.timescaleInstalled(binDirectory: binDirectory) ? Self.timescaleSettings : "")
                """
            let conf = dataDirectory.appendingPathComponent("postgresql.conf")
            let handle = try FileHandle(forWritingTo: conf)
            handle.seekToEndOfFile()
            handle.write(Data(settings.utf8))
            try handle.close()
        }
        if !isRunning {
            let result = try run("pg_ctl", [
                "-D", dataDirectory.path, "-l", logFile.path, "-o", "-p \(port)", "-w", "-t", "60", "start",
            ])
            guard result.status == 0 else {
                let log = (try? String(contentsOf: logFile, encoding: .utf8))?.suffix(2000) ?? ""
                throw LocalClusterError.commandFailed("pg_ctl start", result.output + "\n" + log)
            }
        }
        try createDatabaseIfMissing("closebell")
    }

    /// Stops the server (fast shutdown: running transactions are rolled back). Unless the mode
    /// is "immediate", a CHECKPOINT runs first, as a DBA would before a restart: the shutdown
    /// checkpoint then has little left to write, so pg_ctl's wait is not spent flushing
    /// shared buffers on a busy disk.
    public func stop(mode: String = "fast") throws {
        guard isRunning else { return }
        if mode != "immediate" { checkpoint() }
        let result = try run("pg_ctl", ["-D", dataDirectory.path, "-m", mode, "-w", "-t", "300", "stop"])
        guard result.status == 0 else { throw LocalClusterError.commandFailed("pg_ctl stop", result.output) }
    }

    /// Restarts the server (used by tests of reconnection), after a CHECKPOINT as `stop` does.
    public func restart() throws {
        checkpoint()
        let result = try run("pg_ctl", [
            "-D", dataDirectory.path, "-l", logFile.path, "-o", "-p \(port)", "-m", "fast", "-w", "-t", "300", "restart",
        ])
        guard result.status == 0 else { throw LocalClusterError.commandFailed("pg_ctl restart", result.output) }
    }

    /// Stops the server and deletes the folder.
    public func destroy() {
        try? stop(mode: "immediate")
        try? FileManager.default.removeItem(at: directory)
    }

    /// Creates a database unless it exists; `template` copies another database.
    public func createDatabaseIfMissing(_ name: String, template: String? = nil) throws {
        let sql = "SELECT 1 FROM pg_database WHERE datname = $1"
        let session = try PostgresSession(conninfo: url(database: "postgres"))
        defer { session.close() }
        if try session.query(sql, [name]).isEmpty {
            var create = "CREATE DATABASE \(PostgresSession.quoteIdentifier(name))"
            if let template { create += " TEMPLATE \(PostgresSession.quoteIdentifier(template))" }
            try session.execute(create)
        }
    }

    /// Writes the dirty buffers out now; a failure is left to the stop that follows.
    private func checkpoint() {
        guard let session = try? PostgresSession(conninfo: url(database: "postgres")) else { return }
        defer { session.close() }
        _ = try? session.execute("CHECKPOINT")
    }

    /// Drops a database if it exists, disconnecting its sessions.
    public func dropDatabase(_ name: String) throws {
        let session = try PostgresSession(conninfo: url(database: "postgres"))
        defer { session.close() }
        try session.execute("DROP DATABASE IF EXISTS \(PostgresSession.quoteIdentifier(name)) WITH (FORCE)")
    }

    /// The path of a PostgreSQL program of the same installation (`pg_dump`, `psql`, `pgbench`).
    public func programPath(_ name: String) -> String {
        let candidate = binDirectory.appendingPathComponent(name).path
        return FileManager.default.isExecutableFile(atPath: candidate) ? candidate : name
    }

    // MARK: - Helpers

    private func run(_ program: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let executable = binDirectory.appendingPathComponent(program).path
        if geteuid() == 0 {
            return try Self.runProcess("/usr/sbin/runuser", ["-u", "postgres", "--", executable] + arguments)
        }
        return try Self.runProcess(executable, arguments)
    }

    private func chownToPostgres(_ url: URL) throws {
        let result = try Self.runProcess("/bin/chown", ["-R", "postgres:postgres", url.path])
        guard result.status == 0 else { throw LocalClusterError.commandFailed("chown", result.output) }
    }

    /// Runs a program to completion with an environment of its own: the basics
    /// (`ChildEnvironment.base`) and `LC_ALL=C`, never this process's `PG*` variables (they
    /// would point the tools at another server) nor its secrets.
    static func runProcess(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        var environment = ChildEnvironment.base()
        environment["LC_ALL"] = "C"
        return try ChildProcess.run(executable, arguments, replacing: environment)
    }

    /// Finds the PostgreSQL server programs (`PostgresPrograms.serverDirectory`).
    static func findBinDirectory() throws -> URL {
        guard let directory = PostgresPrograms.serverDirectory() else { throw LocalClusterError.serverNotInstalled }
        return directory
    }

    /// The settings a new cluster gets when TimescaleDB is installed: preloaded, no telemetry,
    /// and room for a background scheduler per database with the extension (a test run makes
    /// dozens; the default 8 worker processes would leave later ones without).
    static let timescaleSettings = """
        shared_preload_libraries = 'timescaledb'
        timescaledb.telemetry_level = off
        max_worker_processes = 64
        timescaledb.max_background_workers = 56

        """

    /// True when TimescaleDB is installed for the server in `binDirectory` (its library in
    /// `pg_config --pkglibdir` and its control file under `pg_config --sharedir`): a new
    /// cluster then preloads it, so a database can `CREATE EXTENSION timescaledb`.
    public static func timescaleInstalled(binDirectory: URL) -> Bool {
        guard let result = try? runProcess(binDirectory.appendingPathComponent("pg_config").path, ["--pkglibdir", "--sharedir"]),
              result.status == 0 else { return false }
        let dirs = result.output.split(separator: "\n").map(String.init)
        guard dirs.count == 2 else { return false }
        let fm = FileManager.default
        return fm.fileExists(atPath: dirs[0] + "/timescaledb.so") && fm.fileExists(atPath: dirs[1] + "/extension/timescaledb.control")
    }

    /// Asks the kernel for a free TCP port on 127.0.0.1.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LocalClusterError.noFreePort }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw LocalClusterError.noFreePort }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Why a private cluster could not be set up.
public enum LocalClusterError: Error, CustomStringConvertible {
    /// `initdb` was found nowhere.
    case serverNotInstalled
    /// No TCP port could be reserved.
    case noFreePort
    /// A PostgreSQL program exited non-zero; carries its output.
    case commandFailed(String, String)

    public var description: String {
        switch self {
        case .serverNotInstalled:
            return "PostgreSQL server programs not found (install the 'postgresql' package or set CLOSEBELL_PG_BINDIR)"
        case .noFreePort:
            return "could not reserve a free TCP port on 127.0.0.1"
        case .commandFailed(let command, let output):
            return "\(command) failed: \(output.trimmingCharacters(in: .whitespacesAndNewlines))"
        }
    }
}
