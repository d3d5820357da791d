@testable import Closebell
import Foundation
import Backup
import JobQueue
import MaintenanceTasks
import MarketDataTasks
import Operations
import Polygon
import XCTest
import Yams

/// Each module's settings type decodes its own section; the CLI only composes them. These read
/// real YAML text and environment variables through `ClosebellConfig`, as `closebell` does.
final class ConfigDecodingTests: XCTestCase {
    private func config(_ yaml: String, environment: [String: String] = [:]) throws -> ClosebellConfig {
        let root = try XCTUnwrap(try Yams.load(yaml: yaml) as? [String: Any])
        return try ClosebellConfig(ConfigSection(file: "test.yml", path: "", values: root), environment: environment)
    }

    private func refusal(_ yaml: String, environment: [String: String] = [:]) -> String {
        do {
            _ = try config(yaml, environment: environment)
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    func testWorkerSectionKeysAndDefaults() throws {
        let worker = try config("worker:\n  lease_seconds: 20\n  prune_after_days: 2\n  time_limits: {fills: 60, default: 900}\n").worker
        XCTAssertEqual(worker.leaseSeconds, 20)
        XCTAssertEqual(worker.pruneAfterSeconds, 2 * 86_400)
        XCTAssertEqual(worker.timeLimits, ["backup": 21_600, "fills": 60])
        XCTAssertEqual(worker.defaultTimeLimitSeconds, 900)
        XCTAssertEqual(worker.concurrency, WorkerConfiguration().concurrency, "absent keys keep their defaults")
    }

    func testRefusalsNameTheDottedKeyOrTheVariable() {
        XCTAssertEqual(refusal("worker:\n  lease_seconds: ten\n"), "config test.yml: worker.lease_seconds: expected a number, got ten")
        XCTAssertEqual(refusal("worker:\n  concurrency: 0\n"), "config test.yml: worker.concurrency: must be at least 1, got 0")
        XCTAssertEqual(refusal("worker:\n  time_limits: {fills: 0}\n"),
                       "config test.yml: worker.time_limits.fills: must be at least 0.001, got 0.0")
        XCTAssertEqual(refusal("worker:\n  lease_seconds: 4\n  heartbeat_seconds: 3\n"),
                       "config test.yml: worker.heartbeat_seconds: must be positive and less than half the lease (4.0 s)")
        XCTAssertEqual(refusal("worker:\n  leese_seconds: 4\n"),
                       "config test.yml: worker.leese_seconds: unknown key (misspelt? see the README's configuration table)")
        XCTAssertEqual(refusal("worker:\n  time_limits: 5\n"), "config test.yml: worker.time_limits: expected a mapping of keys")
        XCTAssertEqual(refusal("{}", environment: ["CLOSEBELL_WORKER_CONCURRENCY": "0"]),
                       "config environment: CLOSEBELL_WORKER_CONCURRENCY (worker.concurrency): must be at least 1, got 0")
    }

    /// Each line: the YAML, and the refusal it must get.
    private func assertRefusals(_ cases: [(String, String)], file: StaticString = #filePath, line: UInt = #line) {
        for (yaml, message) in cases {
            XCTAssertEqual(refusal(yaml), message, yaml, file: file, line: line)
        }
    }

    func testScheduleSection() throws {
        XCTAssertEqual(try config("schedule:\n  interval_seconds: 15\n").schedule.intervalSeconds, 15)
        XCTAssertEqual(try config("{}").schedule.intervalSeconds, 60, "the default")
        XCTAssertEqual(try config("{}", environment: ["CLOSEBELL_SCHEDULE_INTERVAL_SECONDS": "30"]).schedule.intervalSeconds, 30)
        assertRefusals([
            ("schedule:\n  interval_seconds: soon\n", "config test.yml: schedule.interval_seconds: expected a number, got soon"),
            ("schedule:\n  interval_seconds: 0.5\n", "config test.yml: schedule.interval_seconds: must be at least 1.0, got 0.5"),
            ("schedule:\n  interval: 5\n", "config test.yml: schedule.interval: unknown key (misspelt? see the README's configuration table)"),
            ("schedule: 5\n", "config test.yml: schedule: expected a mapping of keys"),
        ])
    }

    func testPolygonSection() throws {
        let polygon = try config("""
            polygon:
              base_url: http://127.0.0.1:9/proxy
              requests_per_second: 5
              max_attempts: 2
              retry_base_seconds: 0.25
              shared_budget: false
              shared_max_concurrent_requests: 0
              shared_budget_margin: 0.2
            """).polygon
        XCTAssertEqual(polygon.client.baseURL.absoluteString, "http://127.0.0.1:9/proxy")
        XCTAssertEqual(polygon.client.requestsPerSecond, 5)
        XCTAssertEqual(polygon.client.retry.maxAttempts, 2)
        XCTAssertEqual(polygon.client.retry.baseDelay, 0.25)
        XCTAssertEqual(polygon.client.retry.maxDelay, 30, "absent keys keep their defaults")
        XCTAssertFalse(polygon.sharedBudget)
        XCTAssertEqual(polygon.sharedMaxConcurrent, 0)
        XCTAssertEqual(polygon.sharedBudgetMargin, 0.2)
        XCTAssertNil(polygon.client.apiKey, "no key in the file")

        let defaults = try config("{}").polygon
        XCTAssertEqual(defaults.client.baseURL, PolygonConfiguration.defaultBaseURL)
        XCTAssertEqual(defaults.client.maxConcurrentRequests, 8)
        XCTAssertTrue(defaults.sharedBudget)
        XCTAssertNil(defaults.sharedMaxConcurrent)
        XCTAssertEqual(defaults.sharedBudgetMargin, 0.05)

        // The key comes from the environment only; POLYGON_BASE_URL wins over the file.
        let environment = try config("polygon:\n  base_url: http://127.0.0.1:9/\n",
                                     environment: ["POLYGON_API_KEY": "k-123", "POLYGON_BASE_URL": "http://127.0.0.1:8/"]).polygon.client
        XCTAssertEqual(environment.apiKey, "k-123")
        XCTAssertEqual(environment.baseURL.absoluteString, "http://127.0.0.1:8/")

        assertRefusals([
            ("polygon:\n  requests_per_second: fast\n", "config test.yml: polygon.requests_per_second: expected a number, got fast"),
            ("polygon:\n  max_attempts: 1.5\n", "config test.yml: polygon.max_attempts: expected a whole number, got 1.5"),
            ("polygon:\n  shared_budget: yes please\n", "config test.yml: polygon.shared_budget: expected true or false, got yes please"),
            ("polygon:\n  base_url: ftp://x\n", "config test.yml: polygon.base_url: expected an http(s) URL, got ftp://x"),
            ("polygon:\n  shared_budget_margin: 0.9\n", "config test.yml: polygon.shared_budget_margin: must be 0...0.5, got 0.9"),
            ("polygon:\n  api_key: k\n", "config test.yml: polygon.api_key: unknown key (misspelt? see the README's configuration table)"),
        ])
        XCTAssertEqual(refusal("{}", environment: ["POLYGON_BASE_URL": "api.polygon.io"]),
                       "config environment: POLYGON_BASE_URL: POLYGON_BASE_URL: 'api.polygon.io' is not an absolute http(s) URL without query")
    }

    func testMarketDataSection() throws {
        let marketData = try config("""
            market_data:
              ohlc_days: 60
              float: false
              pacing:
                metadata_enrich: {concurrency: 5, delay_ms: 200}
                earnings: {delay_ms: 50}
            """).marketData
        XCTAssertEqual(marketData.ohlcDays, 60)
        XCTAssertFalse(marketData.fetchFloat)
        XCTAssertEqual(marketData.pacing, ["metadata_enrich": TaskPacing(concurrency: 5, delayMilliseconds: 200),
                                           "earnings": TaskPacing(concurrency: nil, delayMilliseconds: 50)])
        XCTAssertEqual(try config("{}").marketData, MarketDataSettings(), "the defaults")
        XCTAssertEqual(try config("{}", environment: ["CLOSEBELL_MARKET_DATA_OHLC_DAYS": "90"]).marketData.ohlcDays, 90)
        assertRefusals([
            ("market_data:\n  ohlc_days: many\n", "config test.yml: market_data.ohlc_days: expected a whole number, got many"),
            ("market_data:\n  ohlc_days: 0\n", "config test.yml: market_data.ohlc_days: must be at least 1, got 0"),
            ("market_data:\n  ohlc_days: 5000\n", "config test.yml: market_data.ohlc_days: 5000 is out of range (allowed 1...3650)"),
            ("market_data:\n  float: often\n", "config test.yml: market_data.float: expected true or false, got often"),
            ("market_data:\n  pacing:\n    earnings: 5\n",
             "config test.yml: market_data.pacing.earnings: expected {concurrency: N, delay_ms: N}"),
            ("market_data:\n  pacing:\n    earnings: {concurrency: 65}\n",
             "config test.yml: market_data.pacing.earnings.concurrency: must be 1...64, got 65"),
            ("market_data:\n  pacing:\n    earnings: {delay: 5}\n",
             "config test.yml: market_data.pacing.earnings.delay: unknown key (misspelt? see the README's configuration table)"),
            ("market_data:\n  ohlc_dayz: 5\n", "config test.yml: market_data.ohlc_dayz: unknown key (misspelt? see the README's configuration table)"),
        ])
        XCTAssertEqual(refusal("{}", environment: ["CLOSEBELL_MARKET_DATA_PACING": "{earnings: {concurrency: 0}}"]),
                       "config environment: CLOSEBELL_MARKET_DATA_PACING (market_data.pacing.earnings.concurrency): must be at least 1, got 0")
    }

    func testBackupSection() throws {
        let backup = try config("""
            backup:
              directory: /srv/backups
              keep: 3
              keep_daily: 7
              keep_labelled: {weekly: 2, monthly: ~, yearly: 5}
              compressor: gzip
              compression_level: 9
              lock_wait_timeout_seconds: 30
            """).backup
        XCTAssertEqual(backup.directory.path, "/srv/backups")
        XCTAssertEqual(backup.keep, 3)
        XCTAssertEqual(backup.keepDaily, 7)
        XCTAssertEqual(backup.keepLabelled, ["weekly": 2, "yearly": 5], "a null count drops a label's default")
        XCTAssertEqual(backup.compressor, "gzip")
        XCTAssertEqual(backup.compressionLevel, 9)
        XCTAssertEqual(backup.lockWaitTimeout, 30)
        XCTAssertEqual(backup.dumpTimeout, 21_600, "absent keys keep their defaults")

        let defaults = try config("{}").backup
        XCTAssertEqual(defaults.keep, 7)
        XCTAssertEqual(defaults.keepLabelled, BackupSettings.defaultKeepLabelled)
        XCTAssertNil(defaults.compressor)
        XCTAssertEqual(try config("backup:\n  directory: /srv/backups\n", environment: ["CLOSEBELL_BACKUP_DIR": "/var/b"]).backup.directory.path,
                       "/var/b", "CLOSEBELL_BACKUP_DIR wins over the file")

        assertRefusals([
            ("backup:\n  keep_daily: seven\n", "config test.yml: backup.keep_daily: expected a whole number, got seven"),
            ("backup:\n  keep: 0\n", "config test.yml: backup.keep: must be at least 1, got 0"),
            ("backup:\n  compression_level: 10\n", "config test.yml: backup.compression_level: must be 1...9, got 10"),
            ("backup:\n  keep_labelled: {\"bad label\": 2}\n",
             "config test.yml: backup.keep_labelled.bad label: a label is 1 to 64 letters, digits, '-' or '_'"),
            ("backup:\n  keep_labelled: {weekly: 0}\n", "config test.yml: backup.keep_labelled.weekly: must be at least 1, got 0"),
            ("backup:\n  pg_dump: /nonexistent/pg_dump\n", "config test.yml: backup.pg_dump: no executable program /nonexistent/pg_dump"),
            ("backup:\n  compressor: cat\n", "config test.yml: backup.compressor: must be pigz or gzip (the backup is a .sql.gz file), got cat"),
            ("backup:\n  keep_hourly: 2\n", "config test.yml: backup.keep_hourly: unknown key (misspelt? see the README's configuration table)"),
        ])
    }

    func testRetentionSection() throws {
        let retention = try config("""
            retention:
              batch_size: 500
              pause_ms: 20
              drop_partitions: true
              tables:
                maintenance_jobs: 7
                my_events: {column: happened_at, days: 14}
                my_rows: 3
            """).retention
        XCTAssertEqual(retention.batchSize, 500)
        XCTAssertEqual(retention.pauseBetweenBatches, .milliseconds(20))
        XCTAssertTrue(retention.dropPartitions)
        XCTAssertEqual(retention.dropLockTimeout, .seconds(5), "absent keys keep their defaults")
        let jobs = try XCTUnwrap(retention.rules.first { $0.table == "maintenance_jobs" })
        XCTAssertEqual(jobs.days, 7)
        XCTAssertEqual(jobs.filterColumn, "state", "a known table given days keeps its column and filter")
        XCTAssertEqual(retention.rules.first { $0.table == "my_events" }, RetentionRule(table: "my_events", column: "happened_at", days: 14))
        XCTAssertEqual(retention.rules.first { $0.table == "my_rows" }, RetentionRule(table: "my_rows", column: "date", days: 3))
        XCTAssertEqual(try config("{}").retention, RetentionSettings(), "the defaults")
        XCTAssertEqual(try config("{}", environment: ["CLOSEBELL_RETENTION_TABLES": "{volume_slots: 14}"]).retention
            .rules.first { $0.table == "volume_slots" }?.days, 14)

        assertRefusals([
            ("retention:\n  batch_size: big\n", "config test.yml: retention.batch_size: expected a whole number, got big"),
            ("retention:\n  batch_size: 2000000\n", "config test.yml: retention.batch_size: must be 1...1000000, got 2000000"),
            ("retention:\n  drop_lock_timeout_ms: 0\n", "config test.yml: retention.drop_lock_timeout_ms: must be at least 1.0, got 0.0"),
            ("retention:\n  tables: {volume_slots: 2.5}\n",
             "config test.yml: retention.tables.volume_slots: expected a number of days or {column: NAME, days: N}"),
            ("retention:\n  tables: {my_rows: {column: day}}\n", "config test.yml: retention.tables.my_rows.days: is required"),
            ("retention:\n  tables: {my_rows: {days: 3, colum: day}}\n",
             "config test.yml: retention.tables.my_rows.colum: unknown key (misspelt? see the README's configuration table)"),
            ("retention:\n  tables: {volume_slots: -1}\n", "config test.yml: retention.tables.volume_slots.days: must be 0...100000, got -1"),
            ("retention:\n  tables: {\"bad name\": 3}\n",
             "config test.yml: retention.tables: invalid table name \"bad name\": use a plain identifier, optionally schema-qualified (letters, digits, _ and $)"),
            ("retention:\n  tables: {my_rows: {column: \"a b\", days: 3}}\n",
             "config test.yml: retention.tables.my_rows.column: invalid column name \"a b\" for table my_rows: use a plain identifier"),
            ("retention:\n  batch: 5\n", "config test.yml: retention.batch: unknown key (misspelt? see the README's configuration table)"),
        ])
    }

    func testVacuumSection() throws {
        let vacuum = try config("vacuum:\n  tables: [market_data_daily, my_own]\n  reindex_bloat_threshold: 0.5\n").vacuum
        XCTAssertEqual(vacuum.tables, ["market_data_daily", "my_own"])
        XCTAssertEqual(vacuum.reindexBloatThreshold, 0.5)
        XCTAssertEqual(vacuum.reindexMinimumBytes, 1 << 20, "absent keys keep their defaults")
        XCTAssertEqual(try config("{}").vacuum, VacuumSettings(), "the defaults")
        XCTAssertEqual(try config("{}", environment: ["CLOSEBELL_VACUUM_TABLES": "[a, b]"]).vacuum.tables, ["a", "b"])
        assertRefusals([
            ("vacuum:\n  tables: market_data_daily\n", "config test.yml: vacuum.tables: expected a list of names, got market_data_daily"),
            ("vacuum:\n  reindex_minimum_bytes: lots\n", "config test.yml: vacuum.reindex_minimum_bytes: expected a whole number, got lots"),
            ("vacuum:\n  reindex_bloat_threshold: 2\n",
             "config test.yml: vacuum.reindex_bloat_threshold: must be between 0 and 1, got 2.0"),
            ("vacuum:\n  tables: [\"a;b\"]\n",
             "config test.yml: vacuum.tables: invalid table name \"a;b\": use a plain identifier, optionally schema-qualified (letters, digits, _ and $)"),
            ("vacuum:\n  table: [a]\n", "config test.yml: vacuum.table: unknown key (misspelt? see the README's configuration table)"),
        ])
    }

    func testCompressSection() throws {
        let compress = try config("compress:\n  older_than_days: 3\n  segment_by: ticker\n").compress
        XCTAssertEqual(compress.olderThanDays, 3)
        XCTAssertEqual(compress.segmentBy, "ticker")
        XCTAssertEqual(compress.tables, CompressSettings.defaultTables, "absent keys keep their defaults")
        XCTAssertEqual(try config("{}").compress, CompressSettings(), "the defaults")
        assertRefusals([
            ("compress:\n  older_than_days: week\n", "config test.yml: compress.older_than_days: expected a whole number, got week"),
            ("compress:\n  segment_by: 5\n", "config test.yml: compress.segment_by: expected text, got 5"),
            ("compress:\n  segment_by: \"a b\"\n", "config test.yml: compress.segment_by: \"a b\" is not a plain column name"),
            ("compress:\n  lock_timeout_ms: -1\n", "config test.yml: compress.lock_timeout_ms: must be at least 0, got -1"),
            ("compress:\n  older_than: 3\n", "config test.yml: compress.older_than: unknown key (misspelt? see the README's configuration table)"),
        ])
    }

    func testTableSizesSection() throws {
        XCTAssertEqual(try config("table_sizes:\n  tables: [my_own_table]\n").tableSizes.tables, ["my_own_table"])
        XCTAssertEqual(try config("{}").tableSizes, TableSizesSettings(), "the default: no extra tables")
        XCTAssertEqual(try config("{}", environment: ["CLOSEBELL_TABLE_SIZES_TABLES": "[a]"]).tableSizes.tables, ["a"])
        assertRefusals([
            ("table_sizes:\n  tables: market_data_daily\n", "config test.yml: table_sizes.tables: expected a list of names, got market_data_daily"),
            ("table_sizes:\n  tables: [1, 2]\n", "config test.yml: table_sizes.tables: expected a list of names, got [1, 2]"),
            ("table_sizes:\n  extra: [a]\n", "config test.yml: table_sizes.extra: unknown key (misspelt? see the README's configuration table)"),
        ])
    }

    func testHTTPSection() throws {
        let http = try config("http:\n  listen: 127.0.0.1:8008\n  trigger_token: a-token-of-twenty-chars\n  max_connections: 64\n").http
        XCTAssertEqual(http.listen, "127.0.0.1:8008")
        XCTAssertEqual(http.triggerToken, "a-token-of-twenty-chars")
        XCTAssertEqual(http.maxConnections, 64)
        XCTAssertEqual(http.handlerThreads, 8, "absent keys keep their defaults")
        XCTAssertEqual(try config("{}").http, HTTPEndpointSettings(), "the defaults")
        XCTAssertEqual(try config("{}", environment: ["CLOSEBELL_HTTP_TRIGGER_TOKEN": "1234567890123456789"]).http.triggerToken,
                       "1234567890123456789", "a text key takes the variable's text as it is")
        assertRefusals([
            ("http:\n  header_timeout_seconds: soon\n", "config test.yml: http.header_timeout_seconds: expected a number, got soon"),
            ("http:\n  max_connections: 0\n", "config test.yml: http.max_connections: must be at least 1, got 0"),
            ("http:\n  handler_threads: 300\n", "config test.yml: http.handler_threads: must be 1 to 256, got 300"),
            ("http:\n  listen: nowhere\n", "config test.yml: http.listen: invalid listen address \"nowhere\": expected HOST:PORT, e.g. 127.0.0.1:8008"),
            ("http:\n  trigger_token: 918273645\n", "config test.yml: http.trigger_token: expected text (the value is not shown: it is a secret)"),
            ("http:\n  port: 80\n", "config test.yml: http.port: unknown key (misspelt? see the README's configuration table)"),
        ])
    }

    func testAlertsSection() throws {
        let alerts = try config("""
            alerts:
              webhook_url: https://hooks.example/T000/secret
              cooldown_minutes: 5
              daily_deadline: "19:30"
              disk_quota_bytes: 10000000000
              initial_lookback_hours: 2
              backup_disk_percent: off
              backup_max_age_hours: 48
              notify_success: true
            """).alerts
        XCTAssertEqual(alerts.webhookURL?.host, "hooks.example")
        XCTAssertEqual(alerts.cooldownSeconds, 300)
        XCTAssertEqual(alerts.dailyDeadline, "19:30")
        XCTAssertEqual(alerts.diskQuotaBytes, 10_000_000_000)
        XCTAssertEqual(alerts.initialLookbackSeconds, 7200)
        XCTAssertNil(alerts.backupDiskPercent, "off turns the check off")
        XCTAssertEqual(alerts.backupMaxAgeSeconds, 48 * 3600)
        XCTAssertTrue(alerts.notifySuccess)
        XCTAssertEqual(alerts.quotaDays, 30, "absent keys keep their defaults")

        let defaults = try config("{}").alerts
        XCTAssertNil(defaults.webhookURL)
        XCTAssertEqual(defaults.cooldownSeconds, 3600)
        XCTAssertEqual(defaults.dailyDeadline, "20:00")
        XCTAssertEqual(defaults.backupDiskPercent, 80)
        XCTAssertEqual(defaults.backupMaxAgeSeconds, 26 * 3600)
        XCTAssertNil(try config("alerts:\n  daily_deadline: off\n  backup_max_age_hours: false\n").alerts.dailyDeadline)
        XCTAssertNil(try config("{}", environment: ["CLOSEBELL_ALERTS_BACKUP_MAX_AGE_HOURS": "off"]).alerts.backupMaxAgeSeconds)
        XCTAssertEqual(try config("{}", environment: ["CLOSEBELL_ALERTS_DAILY_DEADLINE": "18:00"]).alerts.dailyDeadline, "18:00")

        assertRefusals([
            ("alerts:\n  quota_days: soon\n", "config test.yml: alerts.quota_days: expected a number, got soon"),
            ("alerts:\n  growth_window_days: 1\n", "config test.yml: alerts.growth_window_days: must be at least 2, got 1"),
            ("alerts:\n  backup_disk_percent: 120\n", "config test.yml: alerts.backup_disk_percent: must be at most 100, got 120.0"),
            ("alerts:\n  daily_deadline: [1]\n", "config test.yml: alerts.daily_deadline: expected HH:MM or \"off\", got a list or mapping"),
            ("alerts:\n  daily_deadline: \"25:00\"\n", "config test.yml: alerts.daily_deadline: expected HH:MM (24-hour), got \"25:00\""),
            ("alerts:\n  time_zone: Mars/Olympus\n", "config test.yml: alerts.time_zone: unknown time zone \"Mars/Olympus\""),
            ("alerts:\n  webhook_url: 12345\n", "config test.yml: alerts.webhook_url: expected text (the value is not shown: it is a secret)"),
            ("alerts:\n  webhook_url: ftp://hooks.example/secret\n", "config test.yml: alerts.webhook_url: expected an http(s) URL"),
            ("alerts:\n  disk_quota: 5\n", "config test.yml: alerts.disk_quota: unknown key (misspelt? see the README's configuration table)"),
        ])
    }

    func testUnknownSectionIsRefused() {
        XCTAssertEqual(refusal("polygn:\n  max_attempts: 2\n"),
                       "config test.yml: polygn: unknown key (misspelt? see the README's configuration table)")
    }

    /// The README's configuration block lists every key with its default: it decodes as it is,
    /// to the defaults, and its sections are those the environment can override.
    func testTheREADMEsKeyListDecodesToTheDefaults() throws {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        let configuration = try XCTUnwrap(text.components(separatedBy: "## Configuration").dropFirst().first)
        let block = try XCTUnwrap(configuration.components(separatedBy: "```yaml\n").dropFirst().first?.components(separatedBy: "```").first)
        let root = try XCTUnwrap(try Yams.load(yaml: block) as? [String: Any])
        XCTAssertEqual(Set(root.keys), Set(EnvironmentOverrides.sections), "every section documented, and overridable from the environment")
        let documented = try config(block)
        XCTAssertEqual(documented.marketData, MarketDataSettings())
        XCTAssertEqual(documented.retention.rules.sorted { $0.table < $1.table }, RetentionSettings.defaultRules.sorted { $0.table < $1.table })
        XCTAssertEqual(documented.retention.batchSize, RetentionSettings().batchSize)
        XCTAssertEqual(documented.vacuum, VacuumSettings())
        XCTAssertEqual(documented.compress, CompressSettings())
        XCTAssertEqual(documented.tableSizes, TableSizesSettings())
        XCTAssertEqual(documented.http, HTTPEndpointSettings())
        XCTAssertEqual(documented.schedule, ScheduleSettings())
        XCTAssertEqual(documented.worker.leaseSeconds, WorkerConfiguration().leaseSeconds)
        XCTAssertEqual(documented.backup.keepLabelled, BackupSettings.defaultKeepLabelled)
        XCTAssertEqual(documented.alerts.backupMaxAgeSeconds, AlertSettings().backupMaxAgeSeconds)
        XCTAssertEqual(documented.polygon.client.requestTimeout, PolygonConfiguration().requestTimeout)
    }
}
