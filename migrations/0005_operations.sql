-- 0005: operations: alert deduplication across workers, and table size history.

-- One row per alert key ('failures', 'daily_deadline:2026-11-20'). A worker may send an alert
-- only when its INSERT ... ON CONFLICT claims the key (new, or its cooldown has passed), so any
-- number of workers checking at the same moment send one webhook message.
CREATE TABLE maintenance_alerts (
    key           text PRIMARY KEY,
    sent_at       timestamptz NOT NULL,
    -- Failures that finished at or before this moment were covered by the alert: the next
    -- alert of the key names only later ones.
    covered_until timestamptz NOT NULL,
    summary       text NOT NULL DEFAULT ''
);

COMMENT ON TABLE maintenance_alerts IS
  'closebell alerts sent (one row per key, last sending). DELETE a row to let its alert be sent again at once.';

-- Daily sizes of the maintained tables (task table_sizes), for growth reports.
CREATE TABLE maintenance_table_sizes (
    recorded_on  date NOT NULL,
    table_name   text NOT NULL,
    total_bytes  bigint NOT NULL,
    table_bytes  bigint NOT NULL,
    index_bytes  bigint NOT NULL,
    row_estimate bigint NOT NULL,
    PRIMARY KEY (recorded_on, table_name)
);

COMMENT ON TABLE maintenance_table_sizes IS
  'Sizes of the maintained tables, one row per table and New York date, written by the table_sizes task.';

INSERT INTO maintenance_task_types (task, arg_types, description) VALUES
  ('table_sizes', '{}', 'Records today''s size (total, table, index bytes, row estimate) of each maintained table in maintenance_table_sizes.')
ON CONFLICT (task) DO NOTHING;

-- The daily cycle's last stage records sizes after loads and retention.
INSERT INTO maintenance_cycle_tasks (cycle, stage, task, args)
SELECT 'daily', coalesce(max(stage), 1), 'table_sizes', '{}'
  FROM maintenance_cycle_tasks
 WHERE cycle = 'daily'
HAVING EXISTS (SELECT 1 FROM maintenance_cycles WHERE cycle = 'daily')
   AND NOT EXISTS (SELECT 1 FROM maintenance_cycle_tasks WHERE cycle = 'daily' AND task = 'table_sizes');
