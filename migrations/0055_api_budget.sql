-- 0055: one Polygon API budget for every worker on every host.
--
-- A sliding-window log: a budget of N requests per window keeps the start times of its last N
-- grants (polygon_api_grants, one row per slot). polygon_api_acquire() grants a start NOW when
-- the oldest of those is at least one window old (so no window holds more than N grants),
-- else it answers how long to wait. One short transaction per call, serialised on the budget's
-- row (FOR UPDATE); the grant happens at the moment of the call, so a worker that wakes up
-- late from its wait cannot crowd a second: its request leaves right after its own grant.
-- Times come from the database's clock only (callers sleep the returned duration), so hosts'
-- clocks need not agree.
CREATE TABLE polygon_api_budget (
    name       text PRIMARY KEY,
    granted    bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE polygon_api_grants (
    name       text NOT NULL REFERENCES polygon_api_budget ON DELETE CASCADE,
    slot       integer NOT NULL,
    granted_at timestamptz NOT NULL,
    PRIMARY KEY (name, slot)
);

COMMENT ON TABLE polygon_api_budget IS
  'Cluster-wide Polygon request budgets (closebell polygon.shared_budget), with grants so far. Safe to delete a row.';

-- Grants one request start of budget p_name, which allows p_slots starts per p_window seconds:
-- returns 0 (granted now) or the seconds to wait before asking again.
CREATE FUNCTION polygon_api_acquire(p_name text, p_slots integer, p_window double precision) RETURNS double precision
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_slot   integer;
    v_oldest timestamptz;
    v_now    timestamptz;
BEGIN
    PERFORM 1 FROM polygon_api_budget WHERE name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO polygon_api_budget (name) VALUES (p_name) ON CONFLICT (name) DO NOTHING;
        PERFORM 1 FROM polygon_api_budget WHERE name = p_name FOR UPDATE;
    END IF;
    SELECT s.slot, g.granted_at INTO v_slot, v_oldest
      FROM generate_series(0, greatest(p_slots, 1) - 1) AS s(slot)
      LEFT JOIN polygon_api_grants g ON g.name = p_name AND g.slot = s.slot
     ORDER BY g.granted_at NULLS FIRST, s.slot
     LIMIT 1;
    v_now := clock_timestamp();
    IF v_oldest IS NOT NULL AND v_oldest > v_now - make_interval(secs => greatest(p_window, 0)) THEN
        RETURN extract(epoch FROM v_oldest + make_interval(secs => greatest(p_window, 0)) - v_now);
    END IF;
    INSERT INTO polygon_api_grants (name, slot, granted_at) VALUES (p_name, v_slot, v_now)
    ON CONFLICT (name, slot) DO UPDATE SET granted_at = EXCLUDED.granted_at;
    UPDATE polygon_api_budget SET granted = granted + 1, updated_at = v_now WHERE name = p_name;
    RETURN 0;
END $$;
