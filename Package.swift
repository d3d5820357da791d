// swift-tools-version:6.0
//
// closebell: a maintenance worker for PostgreSQL/TimescaleDB market-data databases.
// Module dependencies point one way, toward the database layer (every module may use Toolkit):
//   closebell (CLI) -> MarketDataTasks, MaintenanceTasks -> JobQueue -> PostgresClient -> CLibPQ
//   MarketDataTasks -> Polygon -> HTTPClient -> CCurl
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "closebell",
    products: [
        .executable(name: "closebell", targets: ["Closebell"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // C libraries, found through pkg-config.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // zlib's crc32: the backup checks the CRC the compressor writes against the dump it was given.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // The primitives every module shares: the lock box, the thread executor, the civil date,
        // the redactor. Foundation and Synchronization only.
        .target(name: "Toolkit", swiftSettings: strict),
        // The libpq binding: connections on their own threads, typed rows, COPY, LISTEN/NOTIFY.
        .target(name: "PostgresClient", dependencies: ["CLibPQ", "Toolkit"], swiftSettings: strict),
        // The one spawn helper: single programs and pipelines (pg_dump | pigz) with posix_spawn,
        // default signal dispositions, no inherited descriptors, environments built on purpose,
        // waits that honour task cancellation; the one lookup of PostgreSQL programs.
        // CChildProcess: pipe2/mkostemp with O_CLOEXEC and posix_spawn_file_actions_addclosefrom_np
        // (Swift's Glibc module does not expose them).
        .target(name: "CChildProcess"),
        .target(name: "ChildProcess", dependencies: ["CChildProcess", "Toolkit"], swiftSettings: strict),
        // A private PostgreSQL cluster (initdb/pg_ctl) for tests, the demo and benchmarks.
        .target(name: "LocalCluster", dependencies: ["PostgresClient", "ChildProcess"], swiftSettings: strict),
        // Applies the numbered SQL files of migrations/ once each, under an advisory lock.
        .target(name: "SchemaMigrations", dependencies: ["PostgresClient"], swiftSettings: strict),
        // The maintenance_jobs queue, the worker runtime, the task protocol and registry (which the
        // worker publishes to maintenance_task_types under the migration lock of SchemaMigrations).
        .target(
            name: "JobQueue",
            dependencies: ["PostgresClient", "SchemaMigrations", "Toolkit", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // pg_dump | pigz backups (verified, rotated), listing, verification and restore.
        // (CChildProcess: mkostemp with O_CLOEXEC for the password file.)
        .target(name: "Backup", dependencies: ["PostgresClient", "JobQueue", "ChildProcess", "CChildProcess", "CZlib", "Toolkit", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        // Retention, vacuum and compress tasks; cycles as data, their scheduler and the NYSE calendar.
        // table_sizes measures the tables and the backup folder (Backup's BackupFiles).
        .target(name: "MaintenanceTasks", dependencies: ["PostgresClient", "JobQueue", "Backup", "Toolkit", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        // Market-data tasks: daily bars, volume slots, metadata, volume stats, universe sync.
        .target(name: "MarketDataTasks", dependencies: ["ChildProcess", "PostgresClient", "JobQueue", "Polygon", "HTTPClient", "Toolkit", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        // The benchmarks of `closebell bench` (ingest, retention, backup): the only product code that
        // links the sample Polygon server besides the CLI's demo; no task module depends on it.
        .target(
            name: "Benchmarks",
            dependencies: ["ChildProcess", "PostgresClient", "JobQueue", "Backup", "MaintenanceTasks", "MarketDataTasks", "Polygon", "SampleMarket", "Toolkit",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // The command-line interface.
        .executableTarget(
            name: "Closebell",
            dependencies: [
                "PostgresClient", "LocalCluster", "SchemaMigrations", "JobQueue",
                "Backup", "MaintenanceTasks", "MarketDataTasks", "Polygon", "SampleMarket", "Benchmarks",
                "Operations", "HTTPClient", "ChildProcess", "Toolkit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),

        // Async HTTP client over libcurl (transfers on dedicated threads).
        .target(name: "HTTPClient", dependencies: ["CCurl", "Toolkit"], swiftSettings: strict),
        // Small HTTP/1.1 server on POSIX sockets (health/metrics endpoints, dashboard, webhooks, sample market):
        // one poll() event loop, a bounded handler pool. accept4/pipe2 with close-on-exec (hidden by Glibc).
        .target(name: "CHTTPSupport"),
        .target(name: "HTTPServer", dependencies: ["CHTTPSupport", "Toolkit"], swiftSettings: strict),
        // Polygon.io (Massive) REST client: typed models, shared rate limiter, retries.
        .target(name: "Polygon", dependencies: ["HTTPClient", "Toolkit"], swiftSettings: strict),
        // Deterministic sample market data and a Polygon-compatible local server (tests, demo, bench).
        .target(name: "SampleMarket", dependencies: ["HTTPServer", "Polygon", "Toolkit"], swiftSettings: strict),

        // Health/status/metrics/trigger endpoint, webhook alerts, table-size history and reports.
        .target(name: "Operations", dependencies: ["PostgresClient", "JobQueue", "Backup", "HTTPServer", "HTTPClient", "Toolkit", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),

        // Shared by the test targets: the private cluster every test database lives in.
        .target(name: "TestSupport", dependencies: ["PostgresClient", "LocalCluster", "SchemaMigrations", "ChildProcess", "Toolkit", .product(name: "Logging", package: "swift-log")], path: "Tests/TestSupport", swiftSettings: strict),
        .testTarget(name: "ToolkitTests", dependencies: ["Toolkit"], swiftSettings: strict),
        .testTarget(name: "PostgresClientTests", dependencies: ["PostgresClient", "TestSupport", "Toolkit"], swiftSettings: strict),
        .testTarget(
            name: "JobQueueTests",
            dependencies: ["JobQueue", "TestSupport", "ChildProcess", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .testTarget(name: "MarketDataTasksTests", dependencies: ["MarketDataTasks", "Benchmarks", "JobQueue", "TestSupport", "Polygon", "SampleMarket", "Toolkit", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "HTTPTests", dependencies: ["HTTPClient", "HTTPServer", "ChildProcess", "TestSupport", "Toolkit"], swiftSettings: strict),
        .testTarget(name: "PolygonTests", dependencies: ["Polygon", "SampleMarket", "HTTPServer", "HTTPClient", "Toolkit"], swiftSettings: strict),
        .testTarget(name: "BackupTests", dependencies: ["Backup", "Benchmarks", "ChildProcess", "JobQueue", "PostgresClient", "TestSupport", "Toolkit", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "OperationsTests", dependencies: ["Operations", "MaintenanceTasks", "JobQueue", "PostgresClient", "HTTPServer", "HTTPClient", "TestSupport", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "MaintenanceTasksTests", dependencies: ["MaintenanceTasks", "Benchmarks", "MarketDataTasks", "JobQueue", "PostgresClient", "TestSupport", "Toolkit", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        // The task registry against maintenance_task_types and the result fields SQL reads.
        .testTarget(
            name: "TaskRegistryTests",
            dependencies: ["Closebell", "JobQueue", "Backup", "MarketDataTasks", "Polygon", "SampleMarket", "PostgresClient", "ChildProcess", "TestSupport", "Toolkit",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .testTarget(name: "LogOutputTests", dependencies: ["Closebell", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "ClosebellCLITests", dependencies: ["TestSupport", "SampleMarket", "PostgresClient", "HTTPClient", "LocalCluster", "ChildProcess"], swiftSettings: strict),
    ]
)
