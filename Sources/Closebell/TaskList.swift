import Backup
import JobQueue
import MaintenanceTasks
import MarketDataTasks

/// Every task this build runs, one registration line each. Adding a task is its file plus one
/// line here: the worker publishes each task's declaration (name, argument types, summary) to
/// `maintenance_task_types` at start, so the database accepts and validates its jobs.
enum TaskList {
    /// The settings the tasks are built with (defaults throughout, as with an empty config file).
    struct Settings {
        var backup: BackupSettings
        var retention = RetentionSettings()
        var vacuum = VacuumSettings()
        var compress = CompressSettings()
        var marketData = MarketDataSettings()
        /// Tables `table_sizes` measures beyond its defaults and the retention and vacuum tables.
        var tableSizesExtra: [String] = []
    }

    /// The registry of every task, around one market-data source (one rate limiter for all).
    static func registry(source: any MarketDataSource, settings: Settings) -> TaskRegistry {
        let market = settings.marketData
        return TaskRegistry([
            NoopTask(),
            BackupTask(settings: settings.backup),
            RetentionTask(settings: settings.retention),
            VacuumTask(settings: settings.vacuum),
            CompressTask(settings: settings.compress),
            TableSizesTask(configured: settings.retention.rules.map(\.table) + settings.vacuum.tables + settings.tableSizesExtra,
                           backupDirectory: settings.backup.directory),
            OHLCDailyTask(source: source, settings: market),
            VolumeSlotsTask(source: source, settings: market),
            MetadataEnrichTask(source: source, settings: market),
            VolumeStatsTask(),
            UniverseSyncTask(source: source, settings: market),
            EarningsTask(source: source, settings: market),
            BackfillTask(source: source, settings: market),
            CompletenessTask(source: source, settings: market),
            ValidateTask(settings: market),
        ])
    }
}
