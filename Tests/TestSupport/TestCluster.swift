import Foundation
import LocalCluster
import PostgresClient

/// The private PostgreSQL cluster shared by every test in this process.
///
/// Started on first use in a temporary folder on a free port, stopped and deleted when the
/// process exits (normally or by a failed assertion), so no server outlives the suite.
public enum TestCluster {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var cluster: LocalCluster?
    nonisolated(unsafe) private static var counter = 0

    /// The running shared cluster.
    public static func shared() throws -> LocalCluster {
        lock.lock()
        defer { lock.unlock() }
        if let cluster { return cluster }
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
