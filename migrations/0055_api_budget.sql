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

-- Requests in flight, when the budget also caps concurrency: one row per slot, held by one
-- caller (holder) until it releases the slot or its lease ends (a worker that died mid-request
-- frees its slot when the lease lapses).
CREATE TABLE polygon_api_inflight (
    name       text NOT NULL REFERENCES polygon_api_budget ON DELETE CASCADE,
    slot       integer NOT NULL,
    holder     text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (name, slot)
);

-- Grants one request start of budget p_name, which allows p_slots starts per p_window seconds
-- and, when p_max_in_flight > 0, that many requests in flight (a slot is held by p_holder for
-- p_lease seconds at most). Returns wait = 0 and the in-flight slot taken (-1 when concurrency
-- is not capped), or the seconds to wait before asking again and a NULL slot.
CREATE FUNCTION polygon_api_acquire(p_name text, p_slots integer, p_window double precision,
                                    p_max_in_flight integer DEFAULT 0, p_lease double precision DEFAULT 60,
                                    p_holder text DEFAULT '')
RETURNS TABLE (wait double precision, slot integer)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_slot    integer;
    v_oldest  timestamptz;
    v_free    integer := -1;
    v_expires timestamptz;
    v_now     timestamptz;
BEGIN
    PERFORM 1 FROM polygon_api_budget b WHERE b.name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO polygon_api_budget (name) VALUES (p_name) ON CONFLICT (name) DO NOTHING;
        PERFORM 1 FROM polygon_api_budget b WHERE b.name = p_name FOR UPDATE;
    END IF;
    v_now := clock_timestamp();
    IF p_max_in_flight > 0 THEN
        SELECT s.n, f.expires_at INTO v_free, v_expires
          FROM generate_series(0, p_max_in_flight - 1) AS s(n)
          LEFT JOIN polygon_api_inflight f ON f.name = p_name AND f.slot = s.n
         ORDER BY f.expires_at NULLS FIRST, s.n
         LIMIT 1;
        IF v_expires IS NOT NULL AND v_expires > v_now THEN
            -- Every slot is held: look again shortly (a release does not wake anyone).
            RETURN QUERY SELECT least(0.05, extract(epoch FROM v_expires - v_now))::double precision, NULL::integer;
            RETURN;
        END IF;
    END IF;
    SELECT s.n, g.granted_at INTO v_slot, v_oldest
      FROM generate_series(0, greatest(p_slots, 1) - 1) AS s(n)
      LEFT JOIN polygon_api_grants g ON g.name = p_name AND g.slot = s.n
     ORDER BY g.granted_at NULLS FIRST, s.n
     LIMIT 1;
    IF v_oldest IS NOT NULL AND v_oldest > v_now - make_interval(secs => greatest(p_window, 0)) THEN
        RETURN QUERY SELECT extract(epoch FROM v_oldest + make_interval(secs => greatest(p_window, 0)) - v_now)::double precision,
                            NULL::integer;
        RETURN;
    END IF;
    INSERT INTO polygon_api_grants AS g (name, slot, granted_at) VALUES (p_name, v_slot, v_now)
    ON CONFLICT (name, slot) DO UPDATE SET granted_at = EXCLUDED.granted_at;
    IF p_max_in_flight > 0 THEN
        INSERT INTO polygon_api_inflight AS f (name, slot, holder, expires_at)
        VALUES (p_name, v_free, p_holder, v_now + make_interval(secs => greatest(p_lease, 1)))
        ON CONFLICT (name, slot) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at;
    END IF;
    UPDATE polygon_api_budget b SET granted = b.granted + 1, updated_at = v_now WHERE b.name = p_name;
    RETURN QUERY SELECT 0::double precision, v_free;
END $$;

-- Gives an in-flight slot back (only its holder can).
CREATE FUNCTION polygon_api_release(p_name text, p_slot integer, p_holder text) RETURNS void
LANGUAGE sql VOLATILE AS $$
    UPDATE polygon_api_inflight SET expires_at = clock_timestamp()
     WHERE name = p_name AND slot = p_slot AND holder = p_holder
$$;
