-- 0030: capacity history: the whole database's size and the backup folder's filesystem, one
-- row per New York date (task table_sizes), for the capacity alerts' linear fit and /metrics.

CREATE TABLE maintenance_capacity (
    recorded_on        date PRIMARY KEY,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    -- pg_database_size(current_database()).
    database_bytes     bigint NOT NULL,
    -- The backup folder as the worker saw it, and its filesystem (statvfs); NULL when the
    -- folder could not be examined.
    backup_directory   text,
    backup_fs_bytes    bigint,
    backup_fs_free     bigint,
    -- The newest *.sql.gz file in the folder, NULL when there is none.
    newest_backup_at   timestamptz
);

COMMENT ON TABLE maintenance_capacity IS
  'Database size and backup filesystem use, one row per New York date, written by the table_sizes task (a second run the same day overwrites).';

UPDATE maintenance_task_types
   SET description = 'Records today''s size of each maintained or configured table in maintenance_table_sizes, and the database size and backup filesystem use in maintenance_capacity.'
 WHERE task = 'table_sizes';
