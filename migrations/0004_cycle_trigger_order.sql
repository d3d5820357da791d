-- 0004: advance cycle runs from a statement-level trigger, in run id order.
--
-- 0003 advanced runs from a row-level trigger. A worker completes its finished jobs in one
-- UPDATE; when two workers each complete jobs of two runs (say the daily and the monthly run on
-- the 1st) in opposite row orders, row triggers lock the two run rows in opposite orders and one
-- statement dies in a deadlock. Here the runs a statement touched are advanced in run id order,
-- so concurrent statements lock run rows in the same order. Statement-level because transition
-- tables cannot be combined with an UPDATE OF column list; the query keeps only rows of a run
-- whose state just became final (succeeded, failed or cancelled; a retry back to 'available'
-- does not count).
--
-- maintenance_cycle_advance() (0003) still locks the run row FOR UPDATE before looking at its
-- jobs, so two jobs of one stage finishing at the same moment start the next stage exactly once.

DROP TRIGGER maintenance_jobs_cycle_advance ON maintenance_jobs;

CREATE OR REPLACE FUNCTION maintenance_jobs_cycle_advance() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_run bigint;
BEGIN
    FOR v_run IN
        SELECT DISTINCT n.run_id
          FROM maintenance_jobs_new n
          JOIN maintenance_jobs_old o ON o.id = n.id
         WHERE n.run_id IS NOT NULL
           AND n.state IN ('succeeded', 'failed', 'cancelled')
           AND o.state IS DISTINCT FROM n.state
         ORDER BY 1
    LOOP
        PERFORM maintenance_cycle_advance(v_run);
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER maintenance_jobs_cycle_advance
    AFTER UPDATE ON maintenance_jobs
    REFERENCING OLD TABLE AS maintenance_jobs_old NEW TABLE AS maintenance_jobs_new
    FOR EACH STATEMENT
    EXECUTE FUNCTION maintenance_jobs_cycle_advance();
