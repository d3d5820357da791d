-- 0003: cycles as data, their runs, and the NYSE trading calendar.
--
-- A cycle (daily, weekly, monthly, or any the user adds) is a list of stages; each stage is a
-- set of tasks with their args. maintenance_enqueue_cycle() creates one run per period (the New
-- York trading date, ISO week or month) and inserts stage 1's jobs. A trigger on
-- maintenance_jobs advances the run when a job of it reaches a final state: once no job of the
-- run is waiting or running, the next stage's jobs are inserted; after the last stage the run is
-- marked succeeded, partial or failed with an outcome. A failed task never stops later stages.

-- ---------------------------------------------------------------------------------------------
-- Trading calendar
-- ---------------------------------------------------------------------------------------------

-- Dates the rules get wrong: special closures (national days of mourning, 2025-01-09) and, with
-- trading = true, days to treat as open. An override wins over the rules.
CREATE TABLE maintenance_calendar_overrides (
    day     date PRIMARY KEY,
    trading boolean NOT NULL,
    note    text NOT NULL DEFAULT ''
);

COMMENT ON TABLE maintenance_calendar_overrides IS
  'Days the NYSE holiday rules get wrong. INSERT INTO maintenance_calendar_overrides VALUES (''2025-01-09'', false, ''National Day of Mourning'');';

INSERT INTO maintenance_calendar_overrides (day, trading, note) VALUES
  ('2025-01-09', false, 'National Day of Mourning for President Carter (special closure)');

-- Easter Sunday of a Gregorian year (the anonymous Gregorian algorithm, Meeus/Jones/Butcher).
CREATE FUNCTION maintenance_easter_sunday(year integer) RETURNS date
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    a int := year % 19;
    b int := year / 100;
    c int := year % 100;
    d int := b / 4;
    e int := b % 4;
    f int := (b + 8) / 25;
    g int := (b - f + 1) / 3;
    h int := (19 * a + b - d - g + 15) % 30;
    i int := c / 4;
    k int := c % 4;
    l int := (32 + 2 * e + 2 * i - h - k) % 7;
    m int := (a + 11 * h + 22 * l) / 451;
    month int := (h + l - 7 * m + 114) / 31;
    day int := ((h + l - 7 * m + 114) % 31) + 1;
BEGIN
    RETURN make_date(year, month, day);
END $$;

-- The NYSE holiday a weekday is by the exchange's rules (overrides not considered), or NULL.
-- Saturday holidays are observed the Friday before and Sunday holidays the Monday after, except
-- New Year's Day: on a Saturday it is not observed (the exchange stays open on December 31).
-- Martin Luther King Jr. Day from 1998, Juneteenth from 2022.
CREATE FUNCTION maintenance_nyse_holiday(d date) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    y   int := extract(year FROM d);
    m   int := extract(month FROM d);
    dom int := extract(day FROM d);
    dow int := extract(isodow FROM d);   -- 1 = Monday ... 7 = Sunday
BEGIN
    IF dow > 5 THEN
        RETURN NULL;
    END IF;
    -- Fixed-date holidays, observed Friday (if on Saturday) or Monday (if on Sunday).
    IF (m = 1 AND dom = 1) OR (m = 1 AND dom = 2 AND dow = 1) THEN
        RETURN 'New Year''s Day';
    END IF;
    IF y >= 2022 AND m = 6 AND (dom = 19 OR (dom = 18 AND dow = 5) OR (dom = 20 AND dow = 1)) THEN
        RETURN 'Juneteenth National Independence Day';
    END IF;
    IF m = 7 AND (dom = 4 OR (dom = 3 AND dow = 5) OR (dom = 5 AND dow = 1)) THEN
        RETURN 'Independence Day';
    END IF;
    IF m = 12 AND (dom = 25 OR (dom = 24 AND dow = 5) OR (dom = 26 AND dow = 1)) THEN
        RETURN 'Christmas Day';
    END IF;
    -- Floating holidays.
    IF y >= 1998 AND m = 1 AND dow = 1 AND dom BETWEEN 15 AND 21 THEN
        RETURN 'Martin Luther King Jr. Day';
    END IF;
    IF m = 2 AND dow = 1 AND dom BETWEEN 15 AND 21 THEN
        RETURN 'Washington''s Birthday';
    END IF;
    IF d = maintenance_easter_sunday(y) - 2 THEN
        RETURN 'Good Friday';
    END IF;
    IF m = 5 AND dow = 1 AND dom >= 25 THEN
        RETURN 'Memorial Day';
    END IF;
    IF m = 9 AND dow = 1 AND dom <= 7 THEN
        RETURN 'Labor Day';
    END IF;
    IF m = 11 AND dow = 4 AND dom BETWEEN 22 AND 28 THEN
        RETURN 'Thanksgiving Day';
    END IF;
    RETURN NULL;
END $$;

-- True when the NYSE trades on day d: an override when one exists, else a weekday that is not a
-- holiday by the rules above.
CREATE FUNCTION maintenance_is_trading_day(d date) RETURNS boolean
LANGUAGE sql STABLE STRICT AS $$
    SELECT coalesce(
        (SELECT o.trading FROM maintenance_calendar_overrides o WHERE o.day = d),
        extract(isodow FROM d) <= 5 AND maintenance_nyse_holiday(d) IS NULL)
$$;

-- ---------------------------------------------------------------------------------------------
-- Cycles
-- ---------------------------------------------------------------------------------------------

CREATE TABLE maintenance_cycles (
    cycle       text PRIMARY KEY CHECK (cycle ~ '^[a-z][a-z0-9_]*$'),
    description text NOT NULL DEFAULT '',
    -- What one run covers: trading_day (the New York trading date; no run on holidays and
    -- weekends), day (every calendar day), week (ISO week, Monday to Sunday), month.
    period      text NOT NULL CHECK (period IN ('trading_day', 'day', 'week', 'month')),
    -- When the scheduler starts the period's run, in time_zone. A run missed while every worker
    -- was down is started later in the same period, never for an earlier one.
    local_time  time NOT NULL DEFAULT '17:00',
    time_zone   text NOT NULL DEFAULT 'America/New_York',
    -- ISO weekdays (1 = Monday ... 7 = Sunday). day/trading_day: the days a run may start
    -- (NULL = every day); week: the first element is the day of the week the run starts.
    weekdays    smallint[] CHECK (weekdays IS NULL OR weekdays <@ '{1,2,3,4,5,6,7}'::smallint[]),
    -- month: the day of the month the run starts (1-28).
    month_day   smallint NOT NULL DEFAULT 1 CHECK (month_day BETWEEN 1 AND 28),
    enabled     boolean NOT NULL DEFAULT true,
    CHECK (now() AT TIME ZONE time_zone IS NOT NULL)   -- refuses an unknown time zone name
);

COMMENT ON TABLE maintenance_cycles IS
  'closebell cycles. Run one with SELECT * FROM maintenance_enqueue_cycle(''daily''); edit stages in maintenance_cycle_tasks.';

CREATE TABLE maintenance_cycle_tasks (
    id       bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    cycle    text NOT NULL REFERENCES maintenance_cycles ON UPDATE CASCADE ON DELETE CASCADE,
    stage    integer NOT NULL CHECK (stage >= 1),
    -- Not a foreign key on purpose: a row naming a task the database does not know is skipped
    -- and recorded in the run, it does not break the cycle.
    task     text NOT NULL,
    args     jsonb NOT NULL DEFAULT '{}',
    priority integer NOT NULL DEFAULT 0,
    enabled  boolean NOT NULL DEFAULT true,
    note     text NOT NULL DEFAULT ''
);

CREATE INDEX maintenance_cycle_tasks_cycle_idx ON maintenance_cycle_tasks (cycle, stage);

INSERT INTO maintenance_cycles (cycle, description, period, local_time, weekdays, month_day) VALUES
  ('daily',   'After the close on each NYSE trading day: backup, loads, statistics, retention.',
              'trading_day', '17:00', '{1,2,3,4,5}', 1),
  ('weekly',  'Saturday morning: VACUUM (ANALYZE) of the maintained tables, then compression.',
              'week', '06:00', '{6}', 1),
  ('monthly', 'First day of the month: labelled backup, retention, vacuum with reindex.',
              'month', '04:00', NULL, 1);

INSERT INTO maintenance_cycle_tasks (cycle, stage, task, args) VALUES
  ('daily',   1, 'backup',          '{}'),
  ('daily',   2, 'ohlc_daily',      '{"days": 30}'),
  ('daily',   2, 'volume_slots',    '{"days": 10}'),
  ('daily',   2, 'metadata_enrich', '{}'),
  ('daily',   3, 'volume_stats',    '{}'),
  ('daily',   4, 'retention',       '{}'),
  ('weekly',  1, 'vacuum',          '{}'),
  ('weekly',  2, 'compress',        '{}'),
  ('monthly', 1, 'backup',          '{"label": "monthly"}'),
  ('monthly', 2, 'retention',       '{}'),
  ('monthly', 3, 'vacuum',          '{"reindex": true}');

CREATE TABLE maintenance_cycle_runs (
    id            bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    cycle         text NOT NULL REFERENCES maintenance_cycles ON UPDATE CASCADE,
    period        date NOT NULL,          -- trading date, Monday of the ISO week, or 1st of month
    state         text NOT NULL DEFAULT 'running'
                  CHECK (state IN ('running', 'succeeded', 'partial', 'failed', 'cancelled')),
    current_stage integer,                -- the stage whose jobs are enqueued
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    -- One entry per started stage: {"stage", "started_at", "jobs": [ids], "skipped": [...]}.
    stages        jsonb NOT NULL DEFAULT '[]',
    -- Set when the run finishes: counts and each task's state and result summary.
    outcome       jsonb,
    UNIQUE (cycle, period)
);

CREATE INDEX maintenance_cycle_runs_recent_idx ON maintenance_cycle_runs (started_at DESC);

-- The period a day belongs to for a cycle's period kind.
CREATE FUNCTION maintenance_cycle_period(kind text, day date) RETURNS date
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE kind
        WHEN 'week'  THEN date_trunc('week', day)::date
        WHEN 'month' THEN date_trunc('month', day)::date
        ELSE day
    END
$$;

-- Writes the outcome of a run whose jobs are all final: succeeded when every task succeeded
-- and none was skipped, failed when none succeeded, partial otherwise.
CREATE FUNCTION maintenance_cycle_finish(p_run bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_stages    jsonb;
    v_tasks     jsonb;
    v_skipped   jsonb;
    v_succeeded int;
    v_failed    int;
    v_cancelled int;
    v_state     text;
BEGIN
    SELECT stages INTO v_stages FROM maintenance_cycle_runs WHERE id = p_run;
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'stage', s.stage, 'job_id', j.id, 'task', j.task, 'args', j.args, 'state', j.state,
               'attempts', j.attempts,
               'result', CASE WHEN j.result IS NULL OR length(j.result::text) <= 4000 THEN j.result
                              ELSE jsonb_build_object('truncated', true, 'bytes', length(j.result::text)) END,
               'error', CASE WHEN j.state = 'succeeded' THEN NULL ELSE j.errors -> -1 END)
             ORDER BY s.stage, j.id), '[]'),
           count(*) FILTER (WHERE j.state = 'succeeded'),
           count(*) FILTER (WHERE j.state = 'failed'),
           count(*) FILTER (WHERE j.state = 'cancelled')
      INTO v_tasks, v_succeeded, v_failed, v_cancelled
      FROM maintenance_jobs j
      LEFT JOIN LATERAL (
          SELECT (e ->> 'stage')::int AS stage
            FROM jsonb_array_elements(v_stages) e
           WHERE (e -> 'jobs') @> to_jsonb(j.id)
           LIMIT 1) s ON true
     WHERE j.run_id = p_run;
    SELECT coalesce(jsonb_agg(x), '[]') INTO v_skipped
      FROM jsonb_array_elements(v_stages) e, jsonb_array_elements(e -> 'skipped') x;
    v_state := CASE
        WHEN v_failed + v_cancelled = 0 AND jsonb_array_length(v_skipped) = 0 THEN 'succeeded'
        WHEN v_succeeded = 0 THEN 'failed'
        ELSE 'partial'
    END;
    UPDATE maintenance_cycle_runs
       SET state = v_state,
           finished_at = now(),
           outcome = jsonb_build_object(
               'succeeded', v_succeeded, 'failed', v_failed, 'cancelled', v_cancelled,
               'skipped', v_skipped, 'tasks', v_tasks)
     WHERE id = p_run;
END $$;

-- Moves a run forward. The caller's statement must hold no lock order assumptions: the run
-- row is locked FOR UPDATE first, so two jobs of the same stage finishing at the same moment
-- are serialized here, and the second (in READ COMMITTED, each statement takes a new snapshot)
-- sees the first one's commit. Whoever sees no waiting or running job left starts the next
-- stage; stages without any enqueueable task are recorded and passed over.
CREATE FUNCTION maintenance_cycle_advance(p_run bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r          maintenance_cycle_runs%ROWTYPE;
    v_stage    int;
    t          record;
    v_job      bigint;
    v_jobs     jsonb;
    v_skipped  jsonb;
BEGIN
    SELECT * INTO r FROM maintenance_cycle_runs WHERE id = p_run FOR UPDATE;
    IF NOT FOUND OR r.state = 'cancelled' THEN
        RETURN;
    END IF;
    LOOP
        IF EXISTS (SELECT 1 FROM maintenance_jobs
                    WHERE run_id = p_run AND state IN ('available', 'running')) THEN
            RETURN;
        END IF;
        IF r.state <> 'running' THEN
            -- A job of a finished run was retried by hand and is final again: refresh the outcome.
            PERFORM maintenance_cycle_finish(p_run);
            RETURN;
        END IF;
        SELECT min(stage) INTO v_stage FROM maintenance_cycle_tasks
         WHERE cycle = r.cycle AND enabled AND stage > coalesce(r.current_stage, 0);
        IF v_stage IS NULL THEN
            PERFORM maintenance_cycle_finish(p_run);
            RETURN;
        END IF;
        v_jobs := '[]';
        v_skipped := '[]';
        FOR t IN SELECT * FROM maintenance_cycle_tasks
                  WHERE cycle = r.cycle AND enabled AND stage = v_stage ORDER BY id LOOP
            IF NOT EXISTS (SELECT 1 FROM maintenance_task_types WHERE task = t.task) THEN
                v_skipped := v_skipped || jsonb_build_object(
                    'stage', v_stage, 'task', t.task, 'cycle_task_id', t.id,
                    'reason', format('unknown task "%s" (not in maintenance_task_types)', t.task));
                CONTINUE;
            END IF;
            BEGIN
                INSERT INTO maintenance_jobs (task, args, priority, run_id)
                VALUES (t.task, t.args, t.priority, p_run)
                RETURNING id INTO v_job;
                v_jobs := v_jobs || to_jsonb(v_job);
            EXCEPTION WHEN others THEN
                -- Args the validation trigger refuses: record why and go on with the others.
                v_skipped := v_skipped || jsonb_build_object(
                    'stage', v_stage, 'task', t.task, 'cycle_task_id', t.id, 'reason', SQLERRM);
            END;
        END LOOP;
        UPDATE maintenance_cycle_runs
           SET current_stage = v_stage,
               stages = stages || jsonb_build_object(
                   'stage', v_stage, 'started_at', now(), 'jobs', v_jobs, 'skipped', v_skipped)
         WHERE id = p_run
        RETURNING * INTO r;
    END LOOP;
END $$;

-- Enqueues one run of a cycle for a period, at most once: the period is the one containing
-- p_period (default: today in the cycle's time zone). Returns the run's id and whether this
-- call created it. For a trading_day cycle on a day the NYSE is closed, or a disabled cycle,
-- nothing is enqueued: run_id is NULL and note says why (p_force overrides both checks).
CREATE FUNCTION maintenance_enqueue_cycle(
    p_cycle text, p_period date DEFAULT NULL, p_force boolean DEFAULT false,
    OUT run_id bigint, OUT created boolean, OUT period date, OUT note text)
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
    period := maintenance_cycle_period(c.period, coalesce(p_period, (now() AT TIME ZONE c.time_zone)::date));
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

-- The enabled cycles whose start time in the current period has passed at p_at and which have
-- no run for that period: what a scheduler (closebell worker --schedule, or pg_cron calling
-- maintenance_enqueue_due_cycles) should enqueue now.
CREATE FUNCTION maintenance_cycles_due(p_at timestamptz DEFAULT now())
RETURNS TABLE (cycle text, period date)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    c       maintenance_cycles%ROWTYPE;
    v_local timestamp;
    v_day   date;
    v_start timestamp;
    v_per   date;
BEGIN
    FOR c IN SELECT * FROM maintenance_cycles WHERE enabled ORDER BY maintenance_cycles.cycle LOOP
        v_local := p_at AT TIME ZONE c.time_zone;
        v_day := v_local::date;
        v_per := maintenance_cycle_period(c.period, v_day);
        IF c.period IN ('trading_day', 'day') THEN
            IF c.weekdays IS NOT NULL AND NOT extract(isodow FROM v_day)::smallint = ANY (c.weekdays) THEN
                CONTINUE;
            END IF;
            IF c.period = 'trading_day' AND NOT maintenance_is_trading_day(v_day) THEN
                CONTINUE;
            END IF;
            v_start := v_day + c.local_time;
        ELSIF c.period = 'week' THEN
            v_start := v_per + (coalesce(c.weekdays[1], 1) - 1) + c.local_time;
        ELSE
            v_start := v_per + (c.month_day - 1) + c.local_time;
        END IF;
        IF v_local >= v_start AND NOT EXISTS (
               SELECT 1 FROM maintenance_cycle_runs r WHERE r.cycle = c.cycle AND r.period = v_per) THEN
            cycle := c.cycle;
            period := v_per;
            RETURN NEXT;
        END IF;
    END LOOP;
END $$;

-- Enqueues every due cycle (see maintenance_cycles_due); safe to call from any number of places.
CREATE FUNCTION maintenance_enqueue_due_cycles(p_at timestamptz DEFAULT now())
RETURNS TABLE (cycle text, period date, run_id bigint, created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    d record;
    e record;
BEGIN
    FOR d IN SELECT * FROM maintenance_cycles_due(p_at) LOOP
        SELECT * INTO e FROM maintenance_enqueue_cycle(d.cycle, d.period);
        cycle := d.cycle;
        period := d.period;
        run_id := e.run_id;
        created := e.created;
        RETURN NEXT;
    END LOOP;
END $$;

-- Cancels a run: no further stage starts and its waiting or running jobs are cancelled.
CREATE FUNCTION maintenance_cancel_cycle_run(p_run bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    UPDATE maintenance_cycle_runs SET state = 'cancelled', finished_at = now()
     WHERE id = p_run AND state = 'running';
    UPDATE maintenance_jobs SET state = 'cancelled'
     WHERE run_id = p_run AND state IN ('available', 'running');
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- The trigger: only rows of a cycle run whose state just became final.
CREATE FUNCTION maintenance_jobs_cycle_advance() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM maintenance_cycle_advance(NEW.run_id);
    RETURN NULL;
END $$;

CREATE TRIGGER maintenance_jobs_cycle_advance
    AFTER UPDATE OF state ON maintenance_jobs
    FOR EACH ROW
    WHEN (NEW.run_id IS NOT NULL
          AND NEW.state IN ('succeeded', 'failed', 'cancelled')
          AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION maintenance_jobs_cycle_advance();
