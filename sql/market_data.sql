-- Market-data queries for psql (closebell migrations 0050-0055). Nothing here changes data
-- unless the comment says so.

-- Who reports earnings in the next 14 days, soonest first (before the open, then unknown, then after the close).
SELECT * FROM upcoming_earnings(14);

-- Earnings known for one symbol, newest first.
SELECT date, time_of_day, fiscal_period, fiscal_year, confirmed, eps_estimate, eps_actual
  FROM ticker_earnings WHERE symbol = 'AAPL' ORDER BY date DESC;

-- Fetch earnings again for every symbol, even those with a known future date.
-- INSERT INTO maintenance_jobs (task, args) VALUES ('earnings', '{"force": true}');

-- "98.7% of symbol-days present over 30 days", per table.
SELECT * FROM market_data_completeness_summary(30);

-- The days with gaps, worst first.
SELECT table_name, day, expected, present, percent
  FROM market_data_completeness WHERE present < expected ORDER BY percent, day DESC LIMIT 20;

-- Which symbols miss which days right now (daily bars: last 30 days; slots: last 10).
SELECT table_name, symbol, day
  FROM market_data_expected_days(current_date - 30, current_date - 10, current_date - 1)
 WHERE NOT present ORDER BY table_name, day, symbol;

-- Mend gaps of a longer window, up to 200 refetches.
-- INSERT INTO maintenance_jobs (task, args) VALUES ('completeness', '{"days": 120, "max_refetch": 200}');

-- Load a range for a few symbols (one grouped request per NYSE trading day).
-- INSERT INTO maintenance_jobs (task, args) VALUES ('backfill', '{"from": "2025-01-02", "to": "2025-06-30", "symbols": ["AAPL", "MSFT"]}');

-- What validate quarantined, by reason.
SELECT table_name, reason, count(*), sum(times) AS times FROM market_data_quarantine GROUP BY 1, 2 ORDER BY 3 DESC;

-- Put a quarantined daily bar back (after checking it), then forget it.
-- INSERT INTO market_data_daily SELECT * FROM jsonb_populate_record(NULL::market_data_daily,
--        (SELECT row_data FROM market_data_quarantine WHERE id = 42));
-- DELETE FROM market_data_quarantine WHERE id = 42;

-- Symbols whose 50-day average is complete, by economic sector.
SELECT m.sector, count(*), round(avg(s.avg_volume_50d)) AS avg_volume_50d
  FROM ticker_volume_stats s JOIN ticker_metadata m USING (symbol)
 WHERE s.complete_50d GROUP BY m.sector ORDER BY 2 DESC;

-- The sector mapping: see it, and make one SIC code an exception (stored rows follow at once).
SELECT * FROM sic_sector_map ORDER BY sic_from, sic_to;
-- INSERT INTO sic_sector_map VALUES (7370, 7370, 'Communication Services', 'internet media');

-- Float against shares outstanding.
SELECT symbol, float_shares, shares_outstanding, round(100 * float_shares / nullif(shares_outstanding, 0), 1) AS float_pct
  FROM ticker_metadata WHERE float_shares IS NOT NULL ORDER BY float_pct;

-- The cluster-wide API budget: requests granted so far and requests in flight now.
SELECT b.name, b.granted, b.updated_at,
       (SELECT count(*) FROM polygon_api_inflight f WHERE f.name = b.name AND f.expires_at > now()) AS in_flight
  FROM polygon_api_budget b;
