-- 0050: earnings dates (task earnings, Benzinga earnings calendar of Polygon/Massive).

-- One announcement per symbol and date. time_of_day classifies the Eastern announcement time:
-- before_open (< 09:30), after_close (>= 16:00), unknown (no time, or during the session);
-- report_time keeps the time as sent. confirmed is false for a projected date.
CREATE TABLE ticker_earnings (
    symbol        text NOT NULL,
    date          date NOT NULL,
    time_of_day   text NOT NULL DEFAULT 'unknown' CHECK (time_of_day IN ('before_open', 'after_close', 'unknown')),
    report_time   time,
    fiscal_period text,
    fiscal_year   integer,
    confirmed     boolean NOT NULL DEFAULT false,
    eps_estimate  numeric,
    eps_actual    numeric,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, date)
);

CREATE INDEX ticker_earnings_date_idx ON ticker_earnings (date);

COMMENT ON TABLE ticker_earnings IS
  'Earnings announcements (closebell task earnings). Who reports in the next N days: SELECT * FROM upcoming_earnings(14);';

-- Who reports from today (New York) through today + p_days, soonest first; before-the-open
-- announcements of a day come before after-the-close ones.
CREATE FUNCTION upcoming_earnings(p_days integer DEFAULT 14)
RETURNS TABLE (symbol text, date date, time_of_day text, report_time time, fiscal_period text, fiscal_year integer,
               confirmed boolean, eps_estimate numeric, days_until integer)
LANGUAGE sql STABLE AS $$
    SELECT e.symbol, e.date, e.time_of_day, e.report_time, e.fiscal_period, e.fiscal_year, e.confirmed, e.eps_estimate,
           e.date - (now() AT TIME ZONE 'America/New_York')::date
      FROM ticker_earnings e
     WHERE e.date BETWEEN (now() AT TIME ZONE 'America/New_York')::date
                      AND (now() AT TIME ZONE 'America/New_York')::date + greatest(p_days, 0)
     ORDER BY e.date, CASE e.time_of_day WHEN 'before_open' THEN 0 WHEN 'unknown' THEN 1 ELSE 2 END, e.symbol
$$;

INSERT INTO maintenance_task_types (task, arg_types, description) VALUES
  ('earnings', '{"symbols": "string_array", "force": "boolean", "days_ahead": "integer", "days_back": "integer", "concurrency": "integer"}',
               'Earnings dates (Benzinga) for active symbols with no future date or a past one; skipped when the plan lacks the endpoint.')
ON CONFLICT (task) DO NOTHING;

-- The daily cycle loads earnings beside the other data tasks (stage 2).
INSERT INTO maintenance_cycle_tasks (cycle, stage, task, args)
SELECT 'daily', 2, 'earnings', '{}'
 WHERE EXISTS (SELECT 1 FROM maintenance_cycles WHERE cycle = 'daily')
   AND NOT EXISTS (SELECT 1 FROM maintenance_cycle_tasks WHERE cycle = 'daily' AND task = 'earnings');
