-- closebell cycles from psql: examples (each statement stands alone; nothing here runs by itself).

-- Run a cycle now (idempotent per period: a second call returns the same run with created = f).
SELECT * FROM maintenance_enqueue_cycle('daily');
-- A given period (any day inside it), or a closed day anyway (force):
SELECT * FROM maintenance_enqueue_cycle('weekly', '2026-11-18');
SELECT * FROM maintenance_enqueue_cycle('daily', '2026-11-26', p_force => true);
-- Today's daily run is not created before 17:00 New York unless forced; p_at judges another moment
-- (due_at says when the period's run is due):
SELECT * FROM maintenance_enqueue_cycle('daily', p_at => '2026-12-07 10:00 America/New_York');
-- What the scheduler would start now, and start it (what `closebell worker --schedule` does),
-- including the previous trading day's daily run when it is missing (catch-up):
SELECT * FROM maintenance_cycles_due();
SELECT * FROM maintenance_enqueue_due_cycles();

-- Recent runs and their outcome.
SELECT id, cycle, period, state, current_stage, started_at, finished_at - started_at AS took
  FROM maintenance_cycle_runs ORDER BY started_at DESC LIMIT 20;
SELECT jsonb_pretty(outcome) FROM maintenance_cycle_runs WHERE id = 42;
-- The jobs of a run.
SELECT id, task, state, attempts, errors -> -1 ->> 'error' AS last_error
  FROM maintenance_jobs WHERE run_id = 42 ORDER BY id;
-- Stop a run: no later stage starts, its waiting and running jobs are cancelled.
SELECT maintenance_cancel_cycle_run(42);

-- Edit cycles: stages run in order, tasks of one stage in parallel.
UPDATE maintenance_cycles SET local_time = '18:30' WHERE cycle = 'daily';
UPDATE maintenance_cycles SET weekdays = '{7}', local_time = '03:00' WHERE cycle = 'weekly';  -- Sundays
UPDATE maintenance_cycles SET enabled = false WHERE cycle = 'monthly';   -- keep its history, stop scheduling
UPDATE maintenance_cycle_tasks SET args = '{"days": 5}' WHERE cycle = 'daily' AND task = 'ohlc_daily';
INSERT INTO maintenance_cycle_tasks (cycle, stage, task, args) VALUES ('daily', 4, 'vacuum', '{"tables": ["market_data_daily"]}');
UPDATE maintenance_cycle_tasks SET enabled = false WHERE cycle = 'daily' AND task = 'metadata_enrich';
-- Catch-up window: how many earlier periods whose run is missing the scheduler still enqueues.
UPDATE maintenance_cycles SET catch_up_periods = 3 WHERE cycle = 'daily';     -- 0 turns it off
-- The quarterly cycle ships disabled; turn it on and give it the tasks you want.
UPDATE maintenance_cycles SET enabled = true, local_time = '05:00' WHERE cycle = 'quarterly';
INSERT INTO maintenance_cycle_tasks (cycle, stage, task, args) VALUES ('quarterly', 1, 'backup', '{"label": "monthly"}');
-- A cycle of your own (period: trading_day, day, week, month or quarter).
INSERT INTO maintenance_cycles (cycle, description, period, local_time, weekdays)
VALUES ('premarket', 'Metadata before the open', 'trading_day', '07:30', '{1,2,3,4,5}');
INSERT INTO maintenance_cycle_tasks (cycle, stage, task, args) VALUES ('premarket', 1, 'metadata_enrich', '{"limit": 200}');

-- Trading calendar: rules plus overrides.
SELECT d::date, maintenance_is_trading_day(d::date) AS trading, maintenance_nyse_holiday(d::date) AS holiday
  FROM generate_series('2026-12-21'::date, '2027-01-04', interval '1 day') d;
INSERT INTO maintenance_calendar_overrides (day, trading, note) VALUES ('2027-01-15', false, 'special closure');
DELETE FROM maintenance_calendar_overrides WHERE day = '2027-01-15';
