-- 0051: history for the statistics: bar counts per average, and the backfill task.

-- How many bars each average used. An average over fewer bars than its window (a new symbol,
-- a young install) is kept, not NULLed: it is partial, and bars_Nd < N says so. The flags
-- below are what a scanner filters on ("only symbols with a full 50-day average").
ALTER TABLE ticker_volume_stats
    ADD COLUMN bars_5d  integer NOT NULL DEFAULT 0,
    ADD COLUMN bars_10d integer NOT NULL DEFAULT 0,
    ADD COLUMN bars_30d integer NOT NULL DEFAULT 0,
    ADD COLUMN bars_50d integer NOT NULL DEFAULT 0,
    ADD COLUMN complete_5d  boolean GENERATED ALWAYS AS (bars_5d >= 5) STORED,
    ADD COLUMN complete_10d boolean GENERATED ALWAYS AS (bars_10d >= 10) STORED,
    ADD COLUMN complete_30d boolean GENERATED ALWAYS AS (bars_30d >= 30) STORED,
    ADD COLUMN complete_50d boolean GENERATED ALWAYS AS (bars_50d >= 50) STORED;

COMMENT ON COLUMN ticker_volume_stats.bars_50d IS
  'Bars avg_volume_50d was computed from; fewer than 50 means a partial average (complete_50d = false).';

INSERT INTO maintenance_task_types (task, arg_types, description) VALUES
  ('backfill', '{"days": "integer", "from": "date", "to": "date", "symbols": "string_array", "concurrency": "integer"}',
               'Daily bars for a range and symbols (default: the universe): one grouped-daily request per NYSE trading day.')
ON CONFLICT (task) DO NOTHING;
