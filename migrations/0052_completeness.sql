-- 0052: gaps and completeness of the market-data tables (task completeness).

-- Every (table, active symbol, NYSE trading day) the tables should hold, and whether they do.
-- market_data_daily is checked from p_daily_from, volume_slots from p_slots_from (volume_slots
-- keeps fewer days), both through p_to. A symbol is expected from its first row in the table
-- onwards (a newly listed symbol has no earlier data); a symbol without any row is expected on
-- every day. A volume_slots day counts as present when it has at least one slot row.
CREATE FUNCTION market_data_expected_days(p_daily_from date, p_slots_from date, p_to date, p_symbols text[] DEFAULT NULL)
RETURNS TABLE (table_name text, symbol text, day date, present boolean)
LANGUAGE sql STABLE AS $$
    WITH days AS (
        SELECT g::date AS day
          FROM generate_series(least(p_daily_from, p_slots_from), p_to, interval '1 day') AS g
         WHERE maintenance_is_trading_day(g::date)
    ), symbols AS (
        SELECT u.symbol FROM ticker_universe u WHERE u.active AND (p_symbols IS NULL OR u.symbol = ANY (p_symbols))
    ), firsts AS (
        SELECT 'market_data_daily'::text AS table_name, s.symbol, p_daily_from AS window_from,
               (SELECT min(m.date) FROM market_data_daily m WHERE m.symbol = s.symbol) AS first_day
          FROM symbols s
        UNION ALL
        SELECT 'volume_slots', s.symbol, p_slots_from,
               (SELECT min(v.date) FROM volume_slots v WHERE v.symbol = s.symbol)
          FROM symbols s
    )
    SELECT f.table_name, f.symbol, d.day,
           CASE f.table_name
               WHEN 'market_data_daily' THEN EXISTS (SELECT 1 FROM market_data_daily m WHERE m.symbol = f.symbol AND m.date = d.day)
               ELSE EXISTS (SELECT 1 FROM volume_slots v WHERE v.symbol = f.symbol AND v.date = d.day)
           END
      FROM firsts f
      JOIN days d ON d.day >= f.window_from AND (f.first_day IS NULL OR d.day >= f.first_day)
$$;

-- Completeness per table and trading day, recorded by each completeness run (the latest
-- check of a day wins). Ready for a metric or a dashboard: present / expected.
CREATE TABLE market_data_completeness (
    table_name text NOT NULL,
    day        date NOT NULL,
    expected   integer NOT NULL,
    present    integer NOT NULL,
    percent    numeric GENERATED ALWAYS AS (CASE WHEN expected > 0 THEN round(100.0 * present / expected, 2) END) STORED,
    checked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, day)
);

CREATE INDEX market_data_completeness_day_idx ON market_data_completeness (day);

COMMENT ON TABLE market_data_completeness IS
  'Symbol-days present per table and NYSE trading day (task completeness). Summary: SELECT * FROM market_data_completeness_summary(30);';

-- "98.7% of symbol-days present over 30 days", per table, from the recorded checks.
CREATE FUNCTION market_data_completeness_summary(p_days integer DEFAULT 30)
RETURNS TABLE (table_name text, days integer, expected bigint, present bigint, missing bigint, percent numeric, checked_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT c.table_name, count(*)::integer, sum(c.expected), sum(c.present), sum(c.expected - c.present),
           CASE WHEN sum(c.expected) > 0 THEN round(100.0 * sum(c.present) / sum(c.expected), 2) END, max(c.checked_at)
      FROM market_data_completeness c
     WHERE c.day > (now() AT TIME ZONE 'America/New_York')::date - greatest(p_days, 1)
     GROUP BY c.table_name
     ORDER BY c.table_name
$$;

INSERT INTO maintenance_task_types (task, arg_types, description) VALUES
  ('completeness', '{"days": "integer", "slots_days": "integer", "symbols": "string_array", "max_refetch": "integer", "refetch": "boolean", "concurrency": "integer"}',
                   'Finds symbol-days missing from market_data_daily and volume_slots (NYSE calendar), refetches up to max_refetch, records completeness.')
ON CONFLICT (task) DO NOTHING;

-- The daily cycle checks (and mends) the last 30 days in its last stage, after the loads.
INSERT INTO maintenance_cycle_tasks (cycle, stage, task, args)
SELECT 'daily', coalesce(max(stage), 1), 'completeness', '{}'
  FROM maintenance_cycle_tasks
 WHERE cycle = 'daily'
HAVING EXISTS (SELECT 1 FROM maintenance_cycles WHERE cycle = 'daily')
   AND NOT EXISTS (SELECT 1 FROM maintenance_cycle_tasks WHERE cycle = 'daily' AND task = 'completeness');
