-- 0040: cycles start when they should, a missed daily run is caught up, and quarterly cycles.
--
-- * maintenance_enqueue_cycle() no longer creates today's run of a trading_day or day cycle
--   before the cycle's local_time (17:00 New York for daily) unless forced: a cron entry on a
--   UTC host or a morning trigger no longer takes the day's only run before the close. It
--   takes the moment to judge by (p_at, default now()) and returns when the run is due (due_at).
-- * maintenance_cycles.catch_up_periods: how many earlier periods the scheduler still enqueues
--   when their run is missing (1 for daily: the previous trading day; 0 elsewhere). Never
--   before the cycle's first run, never further back. Idempotent per period as before.
-- * period 'quarter' (calendar quarters), and a 'quarterly' cycle, disabled until enabled.

ALTER TABLE maintenance_cycles DROP CONSTRAINT maintenance_cycles_period_check;
ALTER TABLE maintenance_cycles ADD CONSTRAINT maintenance_cycles_period_check
    CHECK (period IN ('trading_day', 'day', 'week', 'month', 'quarter'));
ALTER TABLE maintenance_cycles
    ADD COLUMN catch_up_periods integer NOT NULL DEFAULT 0 CHECK (catch_up_periods BETWEEN 0 AND 31);

COMMENT ON COLUMN maintenance_cycles.catch_up_periods IS
  'Earlier periods whose missing run the scheduler still enqueues (daily: 1 = the previous trading day). 0: only the current period.';
COMMENT ON COLUMN maintenance_cycles.local_time IS
  'When the period''s run starts, in time_zone. trading_day/day runs are not created before it unless forced.';

UPDATE maintenance_cycles SET catch_up_periods = 1 WHERE cycle = 'daily';

-- The period a day belongs to for a cycle's period kind.
CREATE OR REPLACE FUNCTION maintenance_cycle_period(kind text, day date) RETURNS date
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE kind
        WHEN 'week'    THEN date_trunc('week', day)::date
        WHEN 'month'   THEN date_trunc('month', day)::date
        WHEN 'quarter' THEN date_trunc('quarter', day)::date
        ELSE day
    END
$$;

-- When a period's run starts, in the cycle's local time: the day's local_time (trading_day,
-- day), the week's first weekdays[] day (week), or month_day of the period's first month.
CREATE FUNCTION maintenance_cycle_start(c maintenance_cycles, p_period date) RETURNS timestamp
LANGUAGE sql STABLE AS $$
    SELECT CASE c.period
        WHEN 'week' THEN p_period + (coalesce(c.weekdays[1], 1) - 1) + c.local_time
        WHEN 'month' THEN p_period + (c.month_day - 1) + c.local_time
        WHEN 'quarter' THEN p_period + (c.month_day - 1) + c.local_time
        ELSE p_period + c.local_time
    END
$$;

-- True when a trading_day or day cycle runs on `day` (its weekdays, and for trading_day the
-- NYSE calendar); week, month and quarter cycles have a run every period.
CREATE FUNCTION maintenance_cycle_runs_on(c maintenance_cycles, day date) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN c.period NOT IN ('trading_day', 'day') THEN true
        WHEN c.weekdays IS NOT NULL AND NOT extract(isodow FROM day)::smallint = ANY (c.weekdays) THEN false
        WHEN c.period = 'trading_day' THEN maintenance_is_trading_day(day)
        ELSE true
    END
$$;

-- The period before the one containing `day` that has a run: the previous trading day (or
-- allowed day), week, month or quarter.
CREATE FUNCTION maintenance_cycle_previous_period(c maintenance_cycles, day date) RETURNS date
LANGUAGE plpgsql STABLE AS $$
DECLARE
    d date := maintenance_cycle_period(c.period, day);
BEGIN
    CASE c.period
        WHEN 'week' THEN RETURN d - 7;
        WHEN 'month' THEN RETURN (d - interval '1 month')::date;
        WHEN 'quarter' THEN RETURN (d - interval '3 months')::date;
        ELSE
            FOR i IN 1..31 LOOP
                d := d - 1;
                IF maintenance_cycle_runs_on(c, d) THEN RETURN d; END IF;
            END LOOP;
            RETURN NULL;
    END CASE;
END $$;

-- Enqueues one run of a cycle for a period, at most once: the period is the one containing
-- p_period (default: the day of p_at in the cycle's time zone). Returns the run's id, whether
-- this call created it, and when the period's run is due (due_at). Nothing is enqueued
-- (run_id NULL, note says why) for a disabled cycle, a trading_day cycle on a day the NYSE is
-- closed, or a trading_day/day run before its local_time; p_force overrides all three. A run
-- that already exists is returned with created = false.
DROP FUNCTION maintenance_enqueue_cycle(text, date, boolean);
CREATE FUNCTION maintenance_enqueue_cycle(
    p_cycle text, p_period date DEFAULT NULL, p_force boolean DEFAULT false, p_at timestamptz DEFAULT now(),
    OUT run_id bigint, OUT created boolean, OUT period date, OUT note text, OUT due_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    c maintenance_cycles%ROWTYPE;
BEGIN
    SELECT * INTO c FROM maintenance_cycles mc WHERE mc.cycle = p_cycle;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown cycle "%"', p_cycle
            USING ERRCODE = '22023',
                  HINT = 'known cycles: ' || coalesce((SELECT string_agg(mc.cycle, ', ' ORDER BY mc.cycle) FROM maintenance_cycles mc), 'none');
    END IF;
    period := maintenance_cycle_period(c.period, coalesce(p_period, (p_at AT TIME ZONE c.time_zone)::date));
    due_at := maintenance_cycle_start(c, period) AT TIME ZONE c.time_zone;
    created := false;
    IF NOT p_force AND NOT c.enabled THEN
        note := format('cycle "%s" is disabled', c.cycle);
        RETURN;
    END IF;
    IF NOT p_force AND c.period = 'trading_day' AND NOT maintenance_is_trading_day(period) THEN
        note := format('%s is not an NYSE trading day (%s)', period,
                       coalesce((SELECT o.note FROM maintenance_calendar_overrides o WHERE o.day = period),
                                maintenance_nyse_holiday(period), 'weekend'));
        RETURN;
    END IF;
    IF NOT p_force AND c.period IN ('trading_day', 'day') AND p_at < due_at THEN
        SELECT r.id INTO run_id FROM maintenance_cycle_runs r WHERE r.cycle = c.cycle AND r.period = maintenance_enqueue_cycle.period;
        IF run_id IS NOT NULL THEN
            note := 'run already exists';
        ELSE
            note := format('the %s run is not due until %s %s; force creates it now',
                           period, to_char(c.local_time, 'HH24:MI'), c.time_zone);
        END IF;
        RETURN;
    END IF;
    INSERT INTO maintenance_cycle_runs AS r (cycle, period) VALUES (c.cycle, period)
    ON CONFLICT ON CONSTRAINT maintenance_cycle_runs_cycle_period_key DO NOTHING
    RETURNING r.id INTO run_id;
    IF run_id IS NULL THEN
        SELECT r.id INTO run_id FROM maintenance_cycle_runs r WHERE r.cycle = c.cycle AND r.period = maintenance_enqueue_cycle.period;
        note := 'run already exists';
        RETURN;
    END IF;
    created := true;
    note := 'enqueued';
    PERFORM maintenance_cycle_advance(run_id);
END $$;

-- The runs a scheduler (closebell worker --schedule, or pg_cron calling
-- maintenance_enqueue_due_cycles) should enqueue at p_at, oldest first: for each enabled cycle,
-- the missing runs of its catch_up_periods earlier periods (only after the cycle's first run,
-- so a new install does not start with yesterday), then the current period's run once its
-- start time has passed.
CREATE OR REPLACE FUNCTION maintenance_cycles_due(p_at timestamptz DEFAULT now())
RETURNS TABLE (cycle text, period date)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    c       maintenance_cycles%ROWTYPE;
    v_day   date;
    v_per   date;
    v_prev  date;
    v_older date[];
BEGIN
    FOR c IN SELECT * FROM maintenance_cycles WHERE enabled ORDER BY maintenance_cycles.cycle LOOP
        v_day := (p_at AT TIME ZONE c.time_zone)::date;
        v_per := maintenance_cycle_period(c.period, v_day);
        v_older := '{}';
        v_prev := v_day;
        FOR i IN 1..c.catch_up_periods LOOP
            v_prev := maintenance_cycle_previous_period(c, v_prev);
            EXIT WHEN v_prev IS NULL;
            v_older := v_prev || v_older;
        END LOOP;
        FOREACH v_prev IN ARRAY v_older LOOP
            IF NOT EXISTS (SELECT 1 FROM maintenance_cycle_runs r WHERE r.cycle = c.cycle AND r.period = v_prev)
               AND EXISTS (SELECT 1 FROM maintenance_cycle_runs r WHERE r.cycle = c.cycle AND r.period < v_prev) THEN
                cycle := c.cycle;
                period := v_prev;
                RETURN NEXT;
            END IF;
        END LOOP;
        IF maintenance_cycle_runs_on(c, v_day)
           AND p_at >= maintenance_cycle_start(c, v_per) AT TIME ZONE c.time_zone
           AND NOT EXISTS (SELECT 1 FROM maintenance_cycle_runs r WHERE r.cycle = c.cycle AND r.period = v_per) THEN
            cycle := c.cycle;
            period := v_per;
            RETURN NEXT;
        END IF;
    END LOOP;
END $$;

-- Enqueues every due run (see maintenance_cycles_due); safe to call from any number of places.
CREATE OR REPLACE FUNCTION maintenance_enqueue_due_cycles(p_at timestamptz DEFAULT now())
RETURNS TABLE (cycle text, period date, run_id bigint, created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    d record;
    e record;
BEGIN
    FOR d IN SELECT * FROM maintenance_cycles_due(p_at) LOOP
        SELECT * INTO e FROM maintenance_enqueue_cycle(d.cycle, d.period, false, p_at);
        cycle := d.cycle;
        period := d.period;
        run_id := e.run_id;
        created := e.created;
        RETURN NEXT;
    END LOOP;
END $$;

INSERT INTO maintenance_cycles (cycle, description, period, local_time, weekdays, month_day, enabled) VALUES
  ('quarterly', 'First day of the quarter: VACUUM (ANALYZE) with reindex, then table sizes. Enable with UPDATE maintenance_cycles SET enabled = true WHERE cycle = ''quarterly''.',
   'quarter', '05:00', NULL, 1, false);
INSERT INTO maintenance_cycle_tasks (cycle, stage, task, args) VALUES
  ('quarterly', 1, 'vacuum',      '{"reindex": true}'),
  ('quarterly', 2, 'table_sizes', '{}');
