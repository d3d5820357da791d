-- 0130: the daily cycle's database-only work runs while the API is still busy.
--
-- Stages wait for every task of the stage before (maintenance_cycle_advance). Until now the
-- API sat idle after the loads while validate, volume_stats, retention and completeness ran one
-- stage after another. metadata_enrich's data (ticker_metadata) is read by none of them, so it
-- moves from the loads' stage to the statistics' stage, where its requests run beside
-- volume_stats, completeness and retention (all database-only but completeness's few
-- refetches). Those three read only what the loads and validate wrote, so they leave the last
-- stage for that one too; table_sizes stays last, after every write of the run.
--
--   1 backup
--   2 ohlc_daily, volume_slots, earnings          (the API's budget is shared by the three)
--   3 validate                                     (the loads' rows, before any statistic)
--   4 metadata_enrich, volume_stats, retention, completeness
--   5 table_sizes
--
-- Only a daily cycle still shaped as migrations 0003-0053 left it is changed: a cycle someone
-- edited is left as it is (and a notice says so).
DO $$
DECLARE
    v_shape text;
BEGIN
    SELECT string_agg(task || ':' || stage, ',' ORDER BY task, stage) INTO v_shape
      FROM maintenance_cycle_tasks WHERE cycle = 'daily';
    IF v_shape IS NULL THEN
        RETURN;
    END IF;
    IF v_shape <> 'backup:1,completeness:5,earnings:2,metadata_enrich:2,ohlc_daily:2,retention:5,table_sizes:5,validate:3,volume_slots:2,volume_stats:4' THEN
        RAISE NOTICE 'the daily cycle was edited (%); its stages are left as they are', v_shape;
        RETURN;
    END IF;
    UPDATE maintenance_cycle_tasks SET stage = 4
     WHERE cycle = 'daily' AND task IN ('metadata_enrich', 'retention', 'completeness');
END $$;
