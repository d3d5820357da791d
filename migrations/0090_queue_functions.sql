-- 0090: retry and cancel of jobs by id, the one way the CLI (`closebell jobs retry|cancel`), the
-- operations endpoint (`POST /jobs/ID/retry|cancel`) and psql users steer a job.
--
-- maintenance_job_steer locks the jobs it may change in id order first (as completions,
-- heartbeats and maintenance_cancel_cycle_run do), so it never deadlocks with a worker, then
-- changes those in a state the action applies to. It returns one row per id that exists: the
-- job's state afterwards and whether this call changed it. An id without a row does not exist.
CREATE OR REPLACE FUNCTION maintenance_job_steer(p_ids bigint[], p_action text)
RETURNS TABLE (id bigint, state text, changed boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_changed bigint[];
BEGIN
    PERFORM 1 FROM maintenance_jobs j WHERE j.id = ANY(p_ids) ORDER BY j.id FOR UPDATE;
    IF p_action = 'retry' THEN
        WITH done AS (
            UPDATE maintenance_jobs j
               SET state = 'available', attempts = 0, run_at = now(), finished_at = NULL
             WHERE j.id = ANY(p_ids) AND j.state IN ('failed', 'cancelled')
            RETURNING j.id)
        SELECT coalesce(array_agg(done.id), '{}') INTO v_changed FROM done;
        IF cardinality(v_changed) > 0 THEN
            PERFORM pg_notify('maintenance_jobs', '');
        END IF;
    ELSIF p_action = 'cancel' THEN
        WITH done AS (
            UPDATE maintenance_jobs j SET state = 'cancelled'
             WHERE j.id = ANY(p_ids) AND j.state IN ('available', 'running')
            RETURNING j.id)
        SELECT coalesce(array_agg(done.id), '{}') INTO v_changed FROM done;
    ELSE
        RAISE EXCEPTION 'unknown job action "%"', p_action USING ERRCODE = '22023', HINT = 'known actions: cancel, retry';
    END IF;
    RETURN QUERY
        SELECT j.id, j.state, j.id = ANY(v_changed) FROM maintenance_jobs j WHERE j.id = ANY(p_ids) ORDER BY j.id;
END $$;

-- failed or cancelled -> available, attempts reset to 0, due now (idle workers are woken);
-- errors are kept.
CREATE OR REPLACE FUNCTION maintenance_job_retry(p_ids bigint[])
RETURNS TABLE (id bigint, state text, changed boolean)
LANGUAGE sql AS $$ SELECT * FROM maintenance_job_steer(p_ids, 'retry') $$;

-- available or running -> cancelled. A running job's worker notices at its next heartbeat and
-- stops the task; nothing of the attempt is written.
CREATE OR REPLACE FUNCTION maintenance_job_cancel(p_ids bigint[])
RETURNS TABLE (id bigint, state text, changed boolean)
LANGUAGE sql AS $$ SELECT * FROM maintenance_job_steer(p_ids, 'cancel') $$;
