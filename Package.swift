// swift-tools-version:6.0
//
// closebell: a maintenance worker for PostgreSQL/TimescaleDB market-data databases.
// Module dependencies point one way, toward the database layer:
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

        // The libpq binding: connections on their own threads, typed rows, COPY, LISTEN/NOTIFY.
        .target(name: "PostgresClient", dependencies: ["CLibPQ"], swiftSettings: strict),
        // The one spawn helper: single programs and pipelines (pg_dump | pigz) with posix_spawn,
        // default signal dispositions, no inherited descriptors, environments built on purpose,
        // waits that honour task cancellation; the one lookup of PostgreSQL programs.
        // CChildProcess: pipe2/mkostemp with O_CLOEXEC and posix_spawn_file_actions_addclosefrom_np
        // (Swift's Glibc module does not expose them).
        .target(name: "CChildProcess"),
        .target(name: "ChildProcess", dependencies: ["CChildProcess"], swiftSettings: strict),
        // A private PostgreSQL cluster (initdb/pg_ctl) for tests, the demo and benchmarks.
        .target(name: "LocalCluster", dependencies: ["PostgresClient", "ChildProcess"], swiftSettings: strict),
        // Applies the numbered SQL files of migrations/ once each, under an advisory lock.
        .target(name: "SchemaMigrations", dependencies: ["PostgresClient"], swiftSettings: strict),
        // The maintenance_jobs queue, the worker runtime and the task protocol.
        .target(
            name: "JobQueue",
            dependencies: ["PostgresClient", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // pg_dump | pigz backups (verified, rotated), listing, verification and restore.
        // (CChildProcess: mkostemp with O_CLOEXEC for the password file.)
        .target(name: "Backup", dependencies: ["PostgresClient", "JobQueue", "ChildProcess", "CChildProcess", "CZlib", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        // Retention, vacuum and compress tasks; cycles as data, their scheduler and the NYSE calendar.
        .target(name: "MaintenanceTasks", dependencies: ["PostgresClient", "JobQueue", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        // Market-data tasks: daily bars, volume slots, metadata, volume stats, universe sync.
        .target(name: "MarketDataTasks", dependencies: ["ChildProcess", "PostgresClient", "JobQueue", "Polygon", "SampleMarket", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        // The command-line interface.
        .executableTarget(
            name: "Closebell",
            dependencies: [
                "PostgresClient", "LocalCluster", "SchemaMigrations", "JobQueue",
                "Backup", "MaintenanceTasks", "MarketDataTasks", "Polygon", "SampleMarket",
                "Operations", "HTTPClient", "ChildProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),

        // Async HTTP client over libcurl (transfers on dedicated threads).
        .target(name: "HTTPClient", dependencies: ["CCurl"], swiftSettings: strict),
        // Small HTTP/1.1 server on POSIX sockets (health/metrics endpoints, dashboard, webhooks, sample market):
        // one poll() event loop, a bounded handler pool. accept4/pipe2 with close-on-exec (hidden by Glibc).
        .target(name: "CHTTPSupport"),
        .target(name: "HTTPServer", dependencies: ["CHTTPSupport"], swiftSettings: strict),
        // Polygon.io (Massive) REST client: typed models, shared rate limiter, retries.
        .target(name: "Polygon", dependencies: ["HTTPClient"], swiftSettings: strict),
        // Deterministic sample market data and a Polygon-compatible local server (tests, demo, bench).
        .target(name: "SampleMarket", dependencies: ["HTTPServer", "Polygon"], swiftSettings: strict),

        // Health/status/metrics/trigger endpoint, webhook alerts, table-size history and reports.
        .target(name: "Operations", dependencies: ["PostgresClient", "JobQueue", "HTTPServer", "HTTPClient", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),

        // Shared by the test targets: the private cluster every test database lives in.
        .target(name: "TestSupport", dependencies: ["PostgresClient", "LocalCluster", "SchemaMigrations", "ChildProcess", .product(name: "Logging", package: "swift-log")], path: "Tests/TestSupport", swiftSettings: strict),
        .testTarget(name: "PostgresClientTests", dependencies: ["PostgresClient", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "JobQueueTests",
            dependencies: ["JobQueue", "TestSupport", "ChildProcess", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .testTarget(name: "MarketDataTasksTests", dependencies: ["MarketDataTasks", "JobQueue", "TestSupport", "Polygon", "SampleMarket", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "HTTPTests", dependencies: ["HTTPClient", "HTTPServer", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "PolygonTests", dependencies: ["Polygon", "SampleMarket", "HTTPServer", "HTTPClient"], swiftSettings: strict),
        .testTarget(name: "BackupTests", dependencies: ["Backup", "JobQueue", "PostgresClient", "TestSupport", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "OperationsTests", dependencies: ["Operations", "JobQueue", "PostgresClient", "HTTPServer", "HTTPClient", "TestSupport", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "MaintenanceTasksTests", dependencies: ["MaintenanceTasks", "MarketDataTasks", "JobQueue", "PostgresClient", "TestSupport", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "LogOutputTests", dependencies: ["Closebell", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "ClosebellCLITests", dependencies: ["TestSupport", "SampleMarket", "PostgresClient", "HTTPClient", "LocalCluster", "ChildProcess"], swiftSettings: strict),
    ]
)
