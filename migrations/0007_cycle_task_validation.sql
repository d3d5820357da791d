-- 0007: one check of a task name and its arguments, used by maintenance_jobs and by
-- maintenance_cycle_tasks, so a typo in a cycle edit is refused when it is made, not skipped
-- hours later when the stage is enqueued.

-- Returns the arguments (NULL or JSON null become {}); raises SQLSTATE 22023 naming what is
-- wrong: an unknown task (with the known ones in the HINT), an unknown key, a value of the
-- wrong type, or a date range given both ways.
CREATE FUNCTION maintenance_check_task_args(p_task text, p_args jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_args   jsonb := p_args;
    spec     jsonb;
    arg_key  text;
    arg_val  jsonb;
    expected text;
    valid    boolean;
BEGIN
    SELECT arg_types INTO spec FROM maintenance_task_types WHERE task = p_task;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown task "%"', p_task
            USING ERRCODE = '22023',
                  HINT = 'known tasks: ' || (SELECT string_agg(task, ', ' ORDER BY task) FROM maintenance_task_types);
    END IF;
    IF v_args IS NULL OR v_args = 'null'::jsonb THEN
        v_args := '{}';
    END IF;
    IF jsonb_typeof(v_args) <> 'object' THEN
        RAISE EXCEPTION 'args of task "%" must be a JSON object, got %', p_task, v_args
            USING ERRCODE = '22023';
    END IF;
    IF v_args = '{}'::jsonb THEN
        RETURN v_args;
    END IF;
    FOR arg_key, arg_val IN SELECT key, value FROM jsonb_each(v_args) LOOP
        expected := spec ->> arg_key;
        IF expected IS NULL THEN
            RAISE EXCEPTION 'task "%" does not take argument "%"', p_task, arg_key
                USING ERRCODE = '22023',
                      HINT = CASE WHEN spec = '{}'::jsonb THEN 'it takes no arguments'
                             ELSE 'allowed: ' || (SELECT string_agg(k, ', ' ORDER BY k) FROM jsonb_object_keys(spec) AS k) END;
        END IF;
        valid := CASE expected
            WHEN 'integer' THEN jsonb_typeof(arg_val) = 'number'
                                AND (arg_val #>> '{}')::numeric = trunc((arg_val #>> '{}')::numeric)
                                AND (arg_val #>> '{}')::numeric BETWEEN 0 AND 2147483647
            WHEN 'number' THEN jsonb_typeof(arg_val) = 'number'
            WHEN 'string' THEN jsonb_typeof(arg_val) = 'string'
            WHEN 'boolean' THEN jsonb_typeof(arg_val) = 'boolean'
            WHEN 'object' THEN jsonb_typeof(arg_val) = 'object'
            WHEN 'string_array' THEN jsonb_typeof(arg_val) = 'array'
                                AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(arg_val) e WHERE jsonb_typeof(e) <> 'string')
            WHEN 'date' THEN jsonb_typeof(arg_val) = 'string'
                                AND (arg_val #>> '{}') ~ '^\d{4}-\d{2}-\d{2}$'
                                AND maintenance_is_date(arg_val #>> '{}')
            ELSE false
        END;
        IF NOT valid THEN
            RAISE EXCEPTION 'argument "%" of task "%" must be %, got %', arg_key, p_task,
                CASE expected WHEN 'integer' THEN 'a non-negative whole number'
                              WHEN 'date' THEN 'a date string YYYY-MM-DD'
                              WHEN 'string_array' THEN 'an array of strings'
                              ELSE 'a ' || expected END,
                arg_val
                USING ERRCODE = '22023';
        END IF;
    END LOOP;
    -- Date-range tasks take either {"days": N} or {"from": ..., "to": ...}.
    IF v_args ? 'days' AND (v_args ? 'from' OR v_args ? 'to') THEN
        RAISE EXCEPTION 'task "%" takes either "days" or "from"/"to", not both', p_task USING ERRCODE = '22023';
    END IF;
    IF (v_args ? 'from') <> (v_args ? 'to') THEN
        RAISE EXCEPTION 'task "%": "from" and "to" go together', p_task USING ERRCODE = '22023';
    END IF;
    IF v_args ? 'from' AND (v_args ->> 'from')::date > (v_args ->> 'to')::date THEN
        RAISE EXCEPTION 'task "%": "from" (%) is after "to" (%)', p_task, v_args ->> 'from', v_args ->> 'to'
            USING ERRCODE = '22023';
    END IF;
    RETURN v_args;
END $$;

CREATE OR REPLACE FUNCTION maintenance_jobs_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.args := maintenance_check_task_args(NEW.task, NEW.args);
    RETURN NEW;
END $$;

CREATE FUNCTION maintenance_cycle_tasks_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.args := maintenance_check_task_args(NEW.task, NEW.args);
    RETURN NEW;
END $$;

CREATE TRIGGER maintenance_cycle_tasks_validate
    BEFORE INSERT OR UPDATE OF task, args ON maintenance_cycle_tasks
    FOR EACH ROW EXECUTE FUNCTION maintenance_cycle_tasks_validate();
