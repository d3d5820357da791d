-- 0060: cycle runs advance only on completions that end a job; claims, heartbeats, progress
-- writes and releases no longer pay for the cycle trigger.
--
-- 0004's statement-level trigger used transition tables. While such a trigger exists,
-- PostgreSQL copies the old and new version of every row of every UPDATE of maintenance_jobs
-- into two tuplestores (claims, heartbeats, progress and releases included) and then runs the
-- trigger's join over them: the largest cost of the queue's hot path after the commit itself.
--
-- Now two triggers share the work, without transition tables:
--   * maintenance_jobs_cycle_mark, BEFORE UPDATE OF state, FOR EACH ROW, with a WHEN that only a
--     job of a cycle run becoming final (succeeded, failed or cancelled; a retry back to
--     'available' does not count) passes: it adds the run id to a transaction-local setting.
--     A BEFORE trigger runs once the row is locked (and re-checked in READ COMMITTED), so a row
--     it marks is updated by this statement. Heartbeats and progress writes do not set `state`,
--     so it is not even considered; claims and releases fail its WHEN.
--   * maintenance_jobs_cycle_advance, AFTER UPDATE OF state, FOR EACH STATEMENT, with a WHEN
--     that checks the setting: after the statement, it advances the marked runs in run id
--     order (the lock order of 0004 that prevents deadlocks between two workers completing
--     jobs of the same runs in opposite row orders) and clears the setting. For a claim or
--     release the WHEN is false and the function never runs.
-- If the statement fails, its subtransaction's setting is rolled back with it.

DROP TRIGGER maintenance_jobs_cycle_advance ON maintenance_jobs;

CREATE FUNCTION maintenance_jobs_cycle_mark() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('closebell.cycle_runs_ended',
                       coalesce(nullif(current_setting('closebell.cycle_runs_ended', true), '') || ',', '') || NEW.run_id,
                       true);
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION maintenance_jobs_cycle_advance() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_marked text := current_setting('closebell.cycle_runs_ended', true);
    v_run    bigint;
BEGIN
    PERFORM set_config('closebell.cycle_runs_ended', '', true);
    FOR v_run IN
        SELECT DISTINCT r::bigint FROM unnest(string_to_array(v_marked, ',')) AS r ORDER BY 1
    LOOP
        PERFORM maintenance_cycle_advance(v_run);
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER maintenance_jobs_cycle_mark
    BEFORE UPDATE OF state ON maintenance_jobs
    FOR EACH ROW
    WHEN (NEW.run_id IS NOT NULL
          AND NEW.state IN ('succeeded', 'failed', 'cancelled')
          AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION maintenance_jobs_cycle_mark();

CREATE TRIGGER maintenance_jobs_cycle_advance
    AFTER UPDATE OF state ON maintenance_jobs
    FOR EACH STATEMENT
    WHEN (current_setting('closebell.cycle_runs_ended', true) <> '')
    EXECUTE FUNCTION maintenance_jobs_cycle_advance();

-- The same narrowing for 0001's finish-time trigger, which ran its PL/pgSQL function for
-- every claim and every completion although it only acts when a job becomes final without a
-- finished_at (a state set by hand): the condition moves into its WHEN. The function is 0001's.
DROP TRIGGER maintenance_jobs_finish_time ON maintenance_jobs;

CREATE TRIGGER maintenance_jobs_finish_time
    BEFORE UPDATE OF state ON maintenance_jobs
    FOR EACH ROW
    WHEN (NEW.state IN ('succeeded', 'failed', 'cancelled')
          AND NEW.finished_at IS NULL
          AND NEW.state IS DISTINCT FROM OLD.state)
    EXECUTE FUNCTION maintenance_jobs_finish_time();
