-- closebell operations: size history, alerts and run history from psql.

-- Table sizes over the last 30 recordings, with day-over-day growth.
SELECT recorded_on, table_name, pg_size_pretty(total_bytes) AS total, pg_size_pretty(index_bytes) AS indexes,
       row_estimate,
       total_bytes - lag(total_bytes) OVER (PARTITION BY table_name ORDER BY recorded_on) AS growth_bytes
  FROM maintenance_table_sizes
 WHERE recorded_on > current_date - 30
 ORDER BY table_name, recorded_on;

-- Growth per day over the last 7 days and a 90-day projection, per table.
SELECT table_name,
       pg_size_pretty(max(total_bytes) FILTER (WHERE recorded_on = (SELECT max(recorded_on) FROM maintenance_table_sizes))) AS now,
       pg_size_pretty(((max(total_bytes) - min(total_bytes)) / greatest(max(recorded_on) - min(recorded_on), 1))::bigint) AS per_day,
       pg_size_pretty((max(total_bytes) + 90 * (max(total_bytes) - min(total_bytes)) / greatest(max(recorded_on) - min(recorded_on), 1))::bigint) AS in_90_days
  FROM maintenance_table_sizes
 WHERE recorded_on > current_date - 7
 GROUP BY table_name
 ORDER BY table_name;

-- Database size and the backup folder's disk, one row per day (task table_sizes).
SELECT recorded_on, pg_size_pretty(database_bytes) AS database, backup_directory,
       round(100.0 * (backup_fs_bytes - backup_fs_free) / nullif(backup_fs_bytes, 0), 1) AS backup_disk_used_percent,
       newest_backup_at
  FROM maintenance_capacity
 ORDER BY recorded_on DESC LIMIT 30;

-- The capacity alert's linear fit: bytes a day over the last 30 days, and the days until a
-- quota (here 100 GB; the alert uses alerts.disk_quota_bytes) would be reached.
SELECT pg_size_pretty(regr_slope(database_bytes, recorded_on - DATE '2000-01-01')::bigint) AS per_day,
       round(((100e9 - max(database_bytes)) / nullif(regr_slope(database_bytes, recorded_on - DATE '2000-01-01'), 0))::numeric) AS days_to_quota
  FROM maintenance_capacity
 WHERE recorded_on > current_date - 30;

-- Record sizes now (a worker runs it; the daily cycle does it in its last stage).
-- INSERT INTO maintenance_jobs (task) VALUES ('table_sizes');

-- Alerts sent (one row per key: 'failures', 'daily_deadline:daily:YYYY-MM-DD', 'capacity:database_quota',
-- 'capacity:backup_disk', 'capacity:table_growth', 'backup_age', 'success:RUN_ID').
SELECT key, sent_at, covered_until, left(summary, 120) AS summary FROM maintenance_alerts ORDER BY sent_at DESC;
-- End the failure alert's cooldown now (the next check alerts again if something failed since):
-- DELETE FROM maintenance_alerts WHERE key = 'failures';

-- The last run of each cycle and its failed tasks.
SELECT DISTINCT ON (r.cycle) r.cycle, r.period, r.state, r.started_at, r.finished_at - r.started_at AS took,
       (SELECT string_agg(t ->> 'task', ', ') FROM jsonb_array_elements(r.outcome -> 'tasks') t WHERE t ->> 'state' <> 'succeeded') AS failed_tasks
  FROM maintenance_cycle_runs r
 ORDER BY r.cycle, r.started_at DESC;
