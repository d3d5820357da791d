-- 0054: economic sector from a user-editable SIC mapping, the SIC division in its own column,
-- free float, description and home page.

ALTER TABLE ticker_metadata
    ADD COLUMN sic_division text,
    ADD COLUMN float_shares numeric,
    ADD COLUMN description  text,
    ADD COLUMN homepage_url text;

COMMENT ON COLUMN ticker_metadata.sector IS
  'Economic sector (Technology, Health Care, Financials...) of sic_code by sic_sector_map; NULL when no range covers the code.';
COMMENT ON COLUMN ticker_metadata.sic_division IS 'The SIC division of sic_code (Manufacturing, Services...).';
COMMENT ON COLUMN ticker_metadata.float_shares IS
  'Free float in shares (float endpoint); NULL when the API plan lacks the endpoint or has no figure (see the metadata_enrich result).';

-- SIC code ranges (inclusive) and the economic sector of each, in the eleven GICS sector names a
-- scanner user expects. The narrowest range containing a code wins, so an exception is one row:
--   INSERT INTO sic_sector_map VALUES (7370, 7370, 'Communication Services', 'internet media');
-- Edits apply at once: a trigger re-derives ticker_metadata.sector.
CREATE TABLE sic_sector_map (
    sic_from integer NOT NULL,
    sic_to   integer NOT NULL,
    sector   text NOT NULL,
    note     text NOT NULL DEFAULT '',
    PRIMARY KEY (sic_from, sic_to),
    CHECK (sic_from BETWEEN 0 AND 9999 AND sic_to BETWEEN sic_from AND 9999)
);

COMMENT ON TABLE sic_sector_map IS
  'SIC code range -> economic sector (narrowest range wins). Edit freely; ticker_metadata.sector follows.';

INSERT INTO sic_sector_map (sic_from, sic_to, sector, note) VALUES
  (100, 999, 'Consumer Staples', 'agriculture, forestry, fishing'),
  (1000, 1099, 'Materials', 'metal mining'),
  (1200, 1299, 'Energy', 'coal mining'),
  (1300, 1399, 'Energy', 'oil and gas extraction'),
  (1400, 1499, 'Materials', 'nonmetallic minerals'),
  (1500, 1799, 'Industrials', 'construction'),
  (2000, 2199, 'Consumer Staples', 'food, beverages, tobacco'),
  (2200, 2399, 'Consumer Discretionary', 'textiles, apparel'),
  (2400, 2499, 'Materials', 'lumber and wood'),
  (2500, 2599, 'Consumer Discretionary', 'furniture'),
  (2600, 2699, 'Materials', 'paper'),
  (2700, 2799, 'Communication Services', 'printing and publishing'),
  (2800, 2899, 'Materials', 'chemicals'),
  (2830, 2836, 'Health Care', 'drugs, biologicals'),
  (2840, 2844, 'Consumer Staples', 'soap, cleaners, cosmetics'),
  (2900, 2999, 'Energy', 'petroleum refining'),
  (3000, 3399, 'Materials', 'rubber, plastics, glass, primary metals'),
  (3100, 3199, 'Consumer Discretionary', 'leather'),
  (3400, 3569, 'Industrials', 'fabricated metal, industrial machinery'),
  (3570, 3579, 'Technology', 'computers and office equipment'),
  (3580, 3599, 'Industrials', 'industrial machinery'),
  (3600, 3699, 'Technology', 'electronic equipment, semiconductors'),
  (3630, 3639, 'Consumer Discretionary', 'household appliances'),
  (3700, 3799, 'Industrials', 'transportation equipment'),
  (3710, 3716, 'Consumer Discretionary', 'motor vehicles'),
  (3800, 3899, 'Technology', 'instruments'),
  (3840, 3851, 'Health Care', 'medical instruments and supplies'),
  (3900, 3999, 'Consumer Discretionary', 'miscellaneous manufacturing'),
  (4000, 4799, 'Industrials', 'transportation'),
  (4800, 4899, 'Communication Services', 'communications'),
  (4900, 4999, 'Utilities', 'electric, gas, water, sanitary'),
  (5000, 5199, 'Industrials', 'wholesale trade'),
  (5120, 5129, 'Health Care', 'drug wholesale'),
  (5140, 5149, 'Consumer Staples', 'grocery wholesale'),
  (5200, 5999, 'Consumer Discretionary', 'retail trade'),
  (5330, 5331, 'Consumer Staples', 'variety stores'),
  (5400, 5499, 'Consumer Staples', 'food stores'),
  (5910, 5912, 'Consumer Staples', 'drug stores'),
  (6000, 6499, 'Financials', 'banks, credit, brokers, insurance'),
  (6500, 6599, 'Real Estate', 'real estate'),
  (6700, 6799, 'Financials', 'holding and investment offices'),
  (6798, 6798, 'Real Estate', 'real estate investment trusts'),
  (7000, 7299, 'Consumer Discretionary', 'hotels, personal services'),
  (7300, 7399, 'Industrials', 'business services'),
  (7370, 7379, 'Technology', 'computer programming, software, data processing'),
  (7500, 7599, 'Consumer Discretionary', 'automotive services'),
  (7800, 7899, 'Communication Services', 'motion pictures'),
  (7900, 7999, 'Consumer Discretionary', 'amusement and recreation'),
  (8000, 8099, 'Health Care', 'health services'),
  (8100, 8199, 'Industrials', 'legal services'),
  (8200, 8299, 'Consumer Discretionary', 'education'),
  (8300, 8699, 'Industrials', 'social services, membership organisations'),
  (8700, 8799, 'Industrials', 'engineering, accounting, research, management'),
  (8731, 8731, 'Health Care', 'commercial physical and biological research');

-- The sector of a SIC code as the API sends it (digits), or NULL.
CREATE FUNCTION sic_sector(p_code text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT m.sector
      FROM sic_sector_map m
     WHERE btrim(p_code) ~ '^\d{1,4}$' AND btrim(p_code)::integer BETWEEN m.sic_from AND m.sic_to
     ORDER BY m.sic_to - m.sic_from, m.sic_from
     LIMIT 1
$$;

-- Any edit of the mapping re-derives every stored sector (one statement per edit statement).
CREATE FUNCTION sic_sector_map_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ticker_metadata SET sector = sic_sector(sic_code) WHERE sector IS DISTINCT FROM sic_sector(sic_code);
    RETURN NULL;
END $$;

CREATE TRIGGER sic_sector_map_apply AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sic_sector_map
    FOR EACH STATEMENT EXECUTE FUNCTION sic_sector_map_apply();

-- Rows written before this migration hold the SIC division in sector: move it, then derive.
UPDATE ticker_metadata SET sic_division = sector, sector = sic_sector(sic_code);
