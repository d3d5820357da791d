-- 0002: market-data tables loaded by the MarketDataTasks module.
--
-- Prices and volumes are exact numeric: the API sends fractional volumes for some symbols and
-- averages must not drift through floating point. Dates are New York trading dates.

-- Which symbols are maintained. Rows added by a user (source 'user') are never deleted or
-- deactivated by universe_sync, which only adds missing symbols with source 'polygon'.
CREATE TABLE ticker_universe (
    symbol   text PRIMARY KEY,
    active   boolean NOT NULL DEFAULT true,
    added_at timestamptz NOT NULL DEFAULT now(),
    source   text NOT NULL DEFAULT 'user'
);

-- One daily bar per symbol and New York trading date.
CREATE TABLE market_data_daily (
    symbol       text NOT NULL,
    date         date NOT NULL,
    open         numeric NOT NULL,
    high         numeric NOT NULL,
    low          numeric NOT NULL,
    close        numeric NOT NULL,
    volume       numeric NOT NULL,
    vwap         numeric,
    trades_count bigint,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, date)
);

-- Volume per 5-minute slot of the extended session, 04:00-20:00 New York time:
-- slot 0 = 04:00-04:04, slot 191 = 19:55-19:59. A slot without minute bars has no row.
CREATE TABLE volume_slots (
    symbol     text NOT NULL,
    date       date NOT NULL,
    slot_index smallint NOT NULL CHECK (slot_index BETWEEN 0 AND 191),
    volume     numeric NOT NULL,
    PRIMARY KEY (symbol, date, slot_index)
);

-- Retention deletes by date across all symbols; the primary keys lead with symbol.
CREATE INDEX market_data_daily_date_idx ON market_data_daily (date);
CREATE INDEX volume_slots_date_idx ON volume_slots (date);

-- Ticker details. sector is the SIC division of sic_code; industry is the SIC description.
CREATE TABLE ticker_metadata (
    symbol             text PRIMARY KEY,
    name               text,
    market_cap         numeric,
    shares_outstanding numeric,
    sector             text,
    industry           text,
    sic_code           text,
    primary_exchange   text,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
-- metadata_enrich picks the stalest rows first.
CREATE INDEX ticker_metadata_updated_idx ON ticker_metadata (updated_at);

-- Average daily volume over the newest 5/10/30/50 daily bars (fewer when fewer exist).
CREATE TABLE ticker_volume_stats (
    symbol         text PRIMARY KEY,
    avg_volume_5d  numeric,
    avg_volume_10d numeric,
    avg_volume_30d numeric,
    avg_volume_50d numeric,
    days_available integer NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- With TimescaleDB installed, the two time-series tables become hypertables partitioned by
-- date (the tables are still empty here, so no data migrates). On plain PostgreSQL this block
-- does nothing and the tables stay ordinary: every task works the same on both.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        EXECUTE $sql$SELECT create_hypertable('market_data_daily', 'date', chunk_time_interval => interval '30 days')$sql$;
        EXECUTE $sql$SELECT create_hypertable('volume_slots', 'date', chunk_time_interval => interval '7 days')$sql$;
    END IF;
END $$;

-- Argument keys 0001 does not yet list for the market-data tasks.
UPDATE maintenance_task_types SET arg_types = arg_types || '{"concurrency": "integer"}'
 WHERE task IN ('ohlc_daily', 'volume_slots', 'metadata_enrich');
UPDATE maintenance_task_types SET arg_types = arg_types || '{"stale_days": "integer"}'
 WHERE task = 'metadata_enrich';
