-- 0006: cancelling a cycle run takes its locks in the order a worker's completion does.
--
-- A worker's completion UPDATE holds a job row, then its trigger (0004) locks the run row.
-- The 0003 version of maintenance_cancel_cycle_run locked the run row first and the job rows
-- second, so a cancel racing a completion could deadlock (PostgreSQL would abort one of them).
-- This version locks the run's unfinished job rows first, in id order, then the run row.
CREATE OR REPLACE FUNCTION maintenance_cancel_cycle_run(p_run bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    PERFORM 1 FROM maintenance_jobs
     WHERE run_id = p_run AND state IN ('available', 'running')
     ORDER BY id
       FOR UPDATE;
    UPDATE maintenance_cycle_runs SET state = 'cancelled', finished_at = now()
     WHERE id = p_run AND state = 'running';
    UPDATE maintenance_jobs SET state = 'cancelled'
     WHERE run_id = p_run AND state IN ('available', 'running');
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
