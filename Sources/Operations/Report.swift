import Foundation
import JobQueue
import Toolkit
import PostgresClient

/// The span a report covers: the last 24 hours or 7 days, compared with the span before.
public enum ReportPeriod: String, Sendable, CaseIterable {
    /// The last 24 hours.
    case day
    /// The last 7 days.
    case week

    /// Length in seconds.
    public var seconds: Double { self == .day ? 86_400 : 7 * 86_400 }
}

/// What `closebell report` shows: cycle runs of the period with their tasks, per-task trend
/// against the previous period, backups, and table sizes with growth.
public struct OperationsReport: Sendable, Codable {
    /// `day` or `week`.
    public var period: String
    /// Start of the period (ISO 8601 UTC).
    public var from: String
    /// End of the period (when the report was made).
    public var to: String
    /// Start of the previous period, compared against.
    public var previousFrom: String
    /// Cycle runs started in the period, newest first.
    public var runs: [RunSummary]
    /// Jobs finished in the period by task, with the previous period's figures.
    public var tasks: [TaskTrend]
    /// Backups made by `backup` jobs in the period.
    public var backups: [BackupEntry]
    /// The newest recorded size of each table and its growth.
    public var tables: [TableGrowth]
    /// Symbol-days present per market-data table over the last 30 days (task `completeness`).
    public var completeness: [CompletenessLine]?
}

/// One market-data table's completeness, from `market_data_completeness_summary(30)`.
public struct CompletenessLine: Sendable, Codable {
    /// The table.
    public var table: String
    /// Trading days checked.
    public var days: Int
    /// Symbol-days expected.
    public var expected: Int64
    /// Symbol-days present.
    public var present: Int64
    /// present / expected in percent.
    public var percent: Double?
}

/// One cycle run.
public struct RunSummary: Sendable, Codable {
    /// `maintenance_cycle_runs.id`.
    public var runID: Int64
    /// The cycle.
    public var cycle: String
    /// The period date of the run.
    public var period: String
    /// `running`, `succeeded`, `partial`, `failed`, `cancelled`.
    public var state: String
    /// When it started (ISO 8601).
    public var startedAt: String
    /// Seconds from start to finish, once finished.
    public var durationSeconds: Double?
    /// Its jobs.
    public var tasks: [TaskOutcome]
}

/// One job of a run.
public struct TaskOutcome: Sendable, Codable {
    /// The task.
    public var task: String
    /// The job's state.
    public var state: String
    /// Attempts made.
    public var attempts: Int
    /// Seconds of the last attempt.
    public var durationSeconds: Double?
    /// Rows written (loads) or removed (retention), when the result says.
    public var rows: Int64?
    /// Bytes freed (vacuum), when the result says.
    public var bytesFreed: Int64?
    /// The last error, for failed jobs (credentials removed).
    public var error: String?
}

/// A task's figures in the period and the previous one.
public struct TaskTrend: Sendable, Codable {
    /// The task.
    public var task: String
    /// Finished jobs, succeeded and failed (final states) in the period.
    public var jobs: Int
    /// Succeeded jobs.
    public var succeeded: Int
    /// Failed jobs.
    public var failed: Int
    /// Mean duration of the succeeded jobs.
    public var averageSeconds: Double?
    /// Rows written or removed.
    public var rows: Int64
    /// Bytes freed.
    public var bytesFreed: Int64
    /// The same figures for the previous period.
    public var previousJobs: Int
    /// Previous period's succeeded jobs.
    public var previousSucceeded: Int
    /// Previous period's failed jobs.
    public var previousFailed: Int
    /// Previous period's mean duration.
    public var previousAverageSeconds: Double?
    /// Previous period's rows.
    public var previousRows: Int64
    /// Previous period's bytes freed.
    public var previousBytesFreed: Int64
}

/// One backup.
public struct BackupEntry: Sendable, Codable {
    /// The job that made it.
    public var jobID: Int64
    /// When the job finished (ISO 8601).
    public var finishedAt: String
    /// The file's name (without directory).
    public var file: String
    /// Compressed size.
    public var bytes: Int64
    /// Seconds it took.
    public var seconds: Double
}

/// A table's newest recorded size and how it grew.
public struct TableGrowth: Sendable, Codable {
    /// The table.
    public var table: String
    /// The newest recording's date.
    public var recordedOn: String
    /// Total bytes (heap, indexes, TOAST).
    public var totalBytes: Int64
    /// Heap and TOAST.
    public var tableBytes: Int64
    /// Indexes.
    public var indexBytes: Int64
    /// Row estimate.
    public var rowEstimate: Int64
    /// Growth of total bytes over the period (against the newest recording at or before its start, else the oldest kept).
    public var growthBytes: Int64
    /// Mean growth per day across the history shown.
    public var growthPerDayBytes: Double?
    /// Up to 60 daily recordings, oldest first (date, total bytes).
    public var history: [SizePoint]
}

/// One day's total size.
public struct SizePoint: Sendable, Codable {
    /// The date.
    public var day: String
    /// Total bytes.
    public var totalBytes: Int64
}

extension OperationsReport {
    /// Reads the report for the period ending at `now`.
    public static func build(connection: PostgresConnection, period: ReportPeriod, now: Date = Date()) async throws -> OperationsReport {
        try await connection.withSession { session in try build(session, period: period, now: now) }
    }

    static func build(_ session: PostgresSession, period: ReportPeriod, now: Date) throws -> OperationsReport {
        let from = now.addingTimeInterval(-period.seconds)
        let previousFrom = from.addingTimeInterval(-period.seconds)

        let runRows = try session.query(
            """
            SELECT r.id, r.cycle, r.period::text AS period, r.state, \(OpsFormat.isoSQL("r.started_at")) AS started_at,
                   extract(epoch FROM r.finished_at - r.started_at)::float8 AS seconds
              FROM maintenance_cycle_runs r
             WHERE r.started_at >= $1 AND r.started_at < $2
             ORDER BY r.started_at DESC, r.id DESC LIMIT 500
            """, [from, now])
        let runIDs = try runRows.map { try $0.decode("id", as: Int64.self) }
        let jobs = Dictionary(grouping: try QueueStore.runJobs(session, runIDs: runIDs)) { $0.runID ?? 0 }
        let runs = try runRows.map { row in
            let id: Int64 = try row.decode("id")
            let tasks = (jobs[id] ?? []).map { job in
                TaskOutcome(
                    task: job.task, state: job.state.rawValue, attempts: job.attempts, durationSeconds: job.seconds,
                    rows: (job.figures.rowsWritten ?? job.figures.totalRowsRemoved).map { Int64($0.rounded()) },
                    bytesFreed: job.figures.bytesFreed.map { Int64($0.rounded()) },
                    error: job.state == .succeeded ? nil : job.lastError.map { Redactor.summary($0) })
            }
            return RunSummary(
                runID: id, cycle: try row.decode("cycle"), period: try row.decode("period"), state: try row.decode("state"),
                startedAt: try row.decode("started_at"), durationSeconds: try row.decodeIfPresent("seconds"), tasks: tasks)
        }

        func aggregate(_ start: Date, _ end: Date) throws -> [String: TaskTotals] {
            Dictionary(uniqueKeysWithValues: try QueueStore.taskTotals(session, finishedFrom: start, before: end).map { ($0.task, $0) })
        }
        let current = try aggregate(from, now), previous = try aggregate(previousFrom, from)
        let trends = Set(current.keys).union(previous.keys).sorted().map { task in
            let c = current[task], p = previous[task]
            return TaskTrend(
                task: task, jobs: c?.jobs ?? 0, succeeded: c?.succeeded ?? 0, failed: c?.failed ?? 0, averageSeconds: c?.averageSeconds,
                rows: c?.rows ?? 0, bytesFreed: c?.bytesFreed ?? 0, previousJobs: p?.jobs ?? 0, previousSucceeded: p?.succeeded ?? 0,
                previousFailed: p?.failed ?? 0, previousAverageSeconds: p?.averageSeconds, previousRows: p?.rows ?? 0,
                previousBytesFreed: p?.bytesFreed ?? 0)
        }

        let backups = try QueueStore.succeededJobs(session, task: "backup", finishedFrom: from, before: now).map { job in
            BackupEntry(
                jobID: job.id, finishedAt: job.finishedAt.map(OpsFormat.iso) ?? "",
                file: URL(fileURLWithPath: job.figures.path ?? "?").lastPathComponent,
                bytes: job.figures.bytes ?? 0, seconds: job.figures.seconds ?? 0)
        }

        let periodDays = period == .day ? 1 : 7
        var tables: [TableGrowth] = []
        let sizeRows = try session.query(
            """
            WITH latest AS (SELECT max(recorded_on) AS day FROM maintenance_table_sizes)
            SELECT s.table_name, s.recorded_on::text AS day, s.total_bytes, s.table_bytes, s.index_bytes, s.row_estimate
              FROM maintenance_table_sizes s, latest
             WHERE s.recorded_on > latest.day - 60
             ORDER BY s.table_name, s.recorded_on
            """)
        var byTable: [String: [(day: String, total: Int64, heap: Int64, index: Int64, rows: Int64)]] = [:]
        for row in sizeRows {
            byTable[try row.decode("table_name"), default: []].append(
                (try row.decode("day"), try row.decode("total_bytes"), try row.decode("table_bytes"), try row.decode("index_bytes"), try row.decode("row_estimate")))
        }
        for (table, points) in byTable.sorted(by: { $0.key < $1.key }) {
            guard let last = points.last, let first = points.first else { continue }
            let start = CivilDay.add(days: -periodDays, to: last.day)
            let baseline = points.last { $0.day <= start } ?? first
            let spanDays = CivilDay.days(from: first.day, to: last.day)
            tables.append(TableGrowth(
                table: table, recordedOn: last.day, totalBytes: last.total, tableBytes: last.heap, indexBytes: last.index,
                rowEstimate: last.rows, growthBytes: last.total - baseline.total,
                growthPerDayBytes: spanDays > 0 ? Double(last.total - first.total) / Double(spanDays) : nil,
                history: points.map { SizePoint(day: $0.day, totalBytes: $0.total) }))
        }

        var completeness: [CompletenessLine] = []
        if try session.query("SELECT to_regproc('market_data_completeness_summary') IS NOT NULL AS present").first?["present"] == "t" {
            for row in try session.query(
                "SELECT table_name, days, expected, present, percent::float8 AS percent FROM market_data_completeness_summary(30)") {
                completeness.append(CompletenessLine(
                    table: try row.decode("table_name"), days: try row.decode("days"), expected: try row.decode("expected"),
                    present: try row.decode("present"), percent: try row.decodeIfPresent("percent")))
            }
        }

        return OperationsReport(
            period: period.rawValue, from: OpsFormat.iso(from), to: OpsFormat.iso(now), previousFrom: OpsFormat.iso(previousFrom),
            runs: runs, tasks: trends, backups: backups, tables: tables, completeness: completeness)
    }
}

/// `YYYY-MM-DD` arithmetic in the proleptic Gregorian calendar (no time zones involved).
enum CivilDay {
    private static var calendar: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }

    static func date(_ text: String) -> Date? {
        let parts = text.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 3 else { return nil }
        return calendar.date(from: DateComponents(year: parts[0], month: parts[1], day: parts[2]))
    }

    static func add(days: Int, to text: String) -> String {
        guard let date = date(text), let moved = calendar.date(byAdding: .day, value: days, to: date) else { return text }
        let c = calendar.dateComponents([.year, .month, .day], from: moved)
        return String(format: "%04d-%02d-%02d", c.year ?? 0, c.month ?? 0, c.day ?? 0)
    }

    static func days(from a: String, to b: String) -> Int {
        guard let x = date(a), let y = date(b) else { return 0 }
        return calendar.dateComponents([.day], from: x, to: y).day ?? 0
    }
}
