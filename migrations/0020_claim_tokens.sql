-- 0020: claim fencing by a token per claim; cancelling clears the holder.
--
-- Until now a worker's completion, heartbeat, progress write and release matched a job on
-- (locked_by, attempts). `closebell jobs retry` resets attempts to 0, and a rescued job can be
-- claimed again by the same worker, so an old execution could match a new claim and write
-- over it. Each claim now takes a number from a sequence (never reset, never decremented, not
-- cycled) into claim_token, and those statements match on it.
CREATE SEQUENCE maintenance_jobs_claim_seq AS bigint NO CYCLE;

ALTER TABLE maintenance_jobs ADD COLUMN claim_token bigint;

COMMENT ON COLUMN maintenance_jobs.claim_token IS
  'Unique to the last claim of this row (from maintenance_jobs_claim_seq). A worker writes the outcome, heartbeat, progress or release of a running job only while the row still carries the token of its claim.';

-- A job that reaches a final state no longer has a holder: cancelling it (an UPDATE from psql,
-- `closebell jobs cancel`, maintenance_cancel_cycle_run) clears locked_by and the lease, so
-- `status` and `jobs show` stop naming a worker for it. A trigger of its own (the worker's
-- completions clear both themselves, so for them the WHEN is false and no function runs).
CREATE FUNCTION maintenance_jobs_clear_holder() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.locked_by := NULL;
    NEW.lease_expires_at := NULL;
    RETURN NEW;
END $$;

CREATE TRIGGER maintenance_jobs_clear_holder
    BEFORE UPDATE OF state ON maintenance_jobs
    FOR EACH ROW
    WHEN (NEW.state IN ('succeeded', 'failed', 'cancelled')
          AND (NEW.locked_by IS NOT NULL OR NEW.lease_expires_at IS NOT NULL))
    EXECUTE FUNCTION maintenance_jobs_clear_holder();

UPDATE maintenance_jobs SET locked_by = NULL, lease_expires_at = NULL
 WHERE state IN ('succeeded', 'failed', 'cancelled') AND (locked_by IS NOT NULL OR lease_expires_at IS NOT NULL);
