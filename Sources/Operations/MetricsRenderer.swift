import Backup
import Foundation
import HTTPServer
import JobQueue

/// Renders `/metrics`. Names follow Prometheus conventions (`_total` counters, `_seconds`,
/// `_bytes`, `_timestamp_seconds` rather than ages); database-derived families are left out
/// while the database is unreachable (`closebell_database_up` says so).
enum MetricsRenderer {
    static func render(stats: WorkerStats.Snapshot, workerUp: Bool, snapshot: OperationsSnapshot?, apiRequests: [String: Int]?,
                       backups: BackupFiles?, filesystem: (bytes: Int64, free: Int64)? = nil, http: HTTPServerStatistics? = nil) -> String {
        let queue = snapshot?.queue
        var out = PrometheusText()
        out.family("closebell_worker_up", type: "gauge", help: "1 while the worker's loops run.")
        out.sample("closebell_worker_up", [], workerUp ? 1 : 0)
        out.family("closebell_worker_start_time_seconds", type: "gauge", help: "Unix time the worker process started its statistics.")
        out.sample("closebell_worker_start_time_seconds", [], stats.startedAt.timeIntervalSince1970.rounded())
        out.family("closebell_database_up", type: "gauge", help: "1 when the last query of this endpoint reached the database.")
        out.sample("closebell_database_up", [], queue == nil ? 0 : 1)

        out.family("closebell_jobs_finished_total", type: "counter", help: "Job attempts finished by this worker, by task and outcome.")
        for task in stats.finished.keys.sorted() {
            for outcome in (stats.finished[task] ?? [:]).keys.sorted() {
                out.sample("closebell_jobs_finished_total", [("task", task), ("outcome", outcome)], Double(stats.finished[task]?[outcome] ?? 0))
            }
        }

        out.family("closebell_job_duration_seconds", type: "histogram", help: "Duration of job attempts run by this worker.")
        for bucket in stats.durationBuckets {
            out.sample("closebell_job_duration_seconds_bucket", [("le", PrometheusText.format(bucket.upperBound))], Double(bucket.count))
        }
        out.sample("closebell_job_duration_seconds_bucket", [("le", "+Inf")], Double(stats.jobsFinished))
        out.sample("closebell_job_duration_seconds_sum", [], stats.secondsByTask.values.reduce(0, +))
        out.sample("closebell_job_duration_seconds_count", [], Double(stats.jobsFinished))

        if let apiRequests {
            out.family("closebell_api_requests_total", type: "counter", help: "Market-data API requests by HTTP status (error: no response).")
            for status in apiRequests.keys.sorted() {
                out.sample("closebell_api_requests_total", [("status", status)], Double(apiRequests[status] ?? 0))
            }
        }

        if let queue {
            out.family("closebell_queue_jobs", type: "gauge", help: "Rows of maintenance_jobs by state and task.")
            var byState: [String: Int] = ["available": 0, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0]
            for entry in queue.depth {
                out.sample("closebell_queue_jobs", [("state", entry.state), ("task", entry.task)], Double(entry.count))
                byState[entry.state, default: 0] += entry.count
            }
            out.family("closebell_queue_depth", type: "gauge", help: "Rows of maintenance_jobs by state.")
            for state in byState.keys.sorted() { out.sample("closebell_queue_depth", [("state", state)], Double(byState[state] ?? 0)) }
            out.family("closebell_queue_oldest_waiting_seconds", type: "gauge", help: "Age of the oldest due job not yet claimed (0 when none).")
            out.sample("closebell_queue_oldest_waiting_seconds", [], max(0, queue.oldestWaitingSeconds))

            if let rows = snapshot?.rows {
                out.family("closebell_rows_written_total", type: "counter",
                           help: "Rows written by loading tasks (succeeded jobs' rows_written, any worker) since this endpoint started, by task and table.")
                for task in rows.written.keys.sorted() {
                    out.sample("closebell_rows_written_total", [("task", task), ("table", TableNames.written[task] ?? task)], rows.written[task] ?? 0)
                }
                out.family("closebell_rows_removed_total", type: "counter", help: "Rows removed by retention jobs (any worker) since this endpoint started.")
                out.sample("closebell_rows_removed_total", [], rows.removed)
            }
            if let snapshot {
                out.family("closebell_database_size_bytes", type: "gauge", help: "pg_database_size of the queue's database.")
                out.sample("closebell_database_size_bytes", [], Double(snapshot.databaseBytes))
                if let at = snapshot.newestBackupJob {
                    out.family("closebell_backup_job_last_success_timestamp_seconds", type: "gauge", help: "Unix time the newest succeeded backup job (any worker) finished.")
                    out.sample("closebell_backup_job_last_success_timestamp_seconds", [], at.timeIntervalSince1970.rounded())
                }
            }
            if !queue.completeness.isEmpty {
                out.family("closebell_market_data_completeness_percent", type: "gauge",
                           help: "Percent of symbol-days present over the last 30 days, by market-data table (completeness task).")
                for table in queue.completeness.keys.sorted() {
                    out.sample("closebell_market_data_completeness_percent", [("table", table)], queue.completeness[table] ?? 0)
                }
            }

            out.family("closebell_cycle_last_success_timestamp_seconds", type: "gauge", help: "Unix time the last successful run of each cycle finished.")
            for cycle in queue.lastSuccess.keys.sorted() {
                out.sample("closebell_cycle_last_success_timestamp_seconds", [("cycle", cycle)], (queue.lastSuccess[cycle] ?? 0).rounded())
            }
            out.family("closebell_cycle_last_run_ok", type: "gauge", help: "1 when the last run of a cycle succeeded or is running, 0 when it ended partial, failed or cancelled.")
            for cycle in queue.lastState.keys.sorted() {
                let state = queue.lastState[cycle] ?? ""
                out.sample("closebell_cycle_last_run_ok", [("cycle", cycle)], state == "succeeded" || state == "running" ? 1 : 0)
            }
        }

        if let backups {
            out.family("closebell_backup_files", type: "gauge", help: "Backup files (*.sql.gz) in the backup directory.")
            out.sample("closebell_backup_files", [], Double(backups.count))
            out.family("closebell_backup_total_bytes", type: "gauge", help: "Bytes of all backup files.")
            out.sample("closebell_backup_total_bytes", [], Double(backups.totalBytes))
            if let bytes = backups.latestBytes, let date = backups.latestDate {
                out.family("closebell_backup_latest_bytes", type: "gauge", help: "Size of the newest backup file.")
                out.sample("closebell_backup_latest_bytes", [], Double(bytes))
                out.family("closebell_backup_latest_timestamp_seconds", type: "gauge", help: "Unix time the newest backup file was written.")
                out.sample("closebell_backup_latest_timestamp_seconds", [], date.timeIntervalSince1970.rounded())
            }
        }
        if let http {
            out.family("closebell_http_connections_open", type: "gauge", help: "Connections open on this endpoint.")
            out.sample("closebell_http_connections_open", [], Double(http.open))
            out.family("closebell_http_connections_evicted_total", type: "counter", help: "Connections closed at the cap to make room (the one waiting longest for its request).")
            out.sample("closebell_http_connections_evicted_total", [], Double(http.evictedAtCap))
            out.family("closebell_http_connections_rejected_total", type: "counter", help: "Connections answered 503 at the cap because every open one was busy.")
            out.sample("closebell_http_connections_rejected_total", [], Double(http.rejectedAtCap))
            out.family("closebell_http_timeouts_total", type: "counter", help: "Connections closed because a request head, body or response write missed its deadline.")
            out.sample("closebell_http_timeouts_total", [], Double(http.timedOut))
        }
        if let filesystem {
            out.family("closebell_backup_disk_size_bytes", type: "gauge", help: "Size of the filesystem holding the backup directory.")
            out.sample("closebell_backup_disk_size_bytes", [], Double(filesystem.bytes))
            out.family("closebell_backup_disk_free_bytes", type: "gauge", help: "Free bytes (for unprivileged users) on the backup directory's filesystem.")
            out.sample("closebell_backup_disk_free_bytes", [], Double(filesystem.free))
        }
        return out.text
    }
}
