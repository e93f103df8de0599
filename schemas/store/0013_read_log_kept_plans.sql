-- The log's read horizon, and the two statements that run at every group commit (the tail's
-- read of the log, the append in one statement), as functions whose plans are kept.
--
-- Vigil's sessions plan every statement at every call (plan_cache_mode = force_custom_plan, see
-- PostgresSettings): a plan made while `events` is small is wrong once it is big. For these two
-- statements planning cost more than running: 0.27–0.35 ms against 0.18–0.22 for the read, and
-- 0.23–0.31 ms for the append (docs/BENCHMARKS.md, Ingest, sessions 43 and 45). In a function
-- their plans are made once per session and kept (force_generic_plan), and the plan can't go
-- wrong with the table's size because the only ways it could are turned off there: with
-- `enable_seqscan` and `enable_sort` off, a read walks the log-order index and an id check
-- probes the unique index, whatever the statistics say, as the custom plans do on a log of any
-- real size.

-- The horizon: the transaction id below which a statement reads the log (ReadHorizon). The
-- oldest transaction of the statement's snapshot still running, leaving out those of
-- `p_left_out` (other databases', read models' runners'; found by the caller in a statement of
-- its own, before this one); with none left, the snapshot's xmax. The one place this rule is
-- written: Swift's statements call it too. STABLE, so it reads the calling statement's snapshot;
-- plpgsql, so its one query keeps its plan (a SQL function with a subquery is planned at every
-- call: 0.07 ms).
CREATE FUNCTION vigil_read_horizon(p_left_out xid8[]) RETURNS xid8
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    IF cardinality(p_left_out) = 0 THEN
        RETURN pg_snapshot_xmin(pg_current_snapshot());
    END IF;
    RETURN coalesce((SELECT min(x) FROM pg_snapshot_xip(pg_current_snapshot()) AS x WHERE x <> ALL (p_left_out)),
                    pg_snapshot_xmax(pg_current_snapshot()));
END;
$$;

-- A page of the log after (p_tx, p_position) (EventStore.read), in one statement and so one
-- snapshot, as rows of four kinds:
--   0: the page's events, in log order, at most p_limit of those p_types and p_prefix take
--      (NULL: any), below the horizon; `data` and `metadata` as text, or '' without p_bodies;
--   1: the newest checkpoint below the horizon (where the next read starts when the page isn't
--      full);
--   2: committed events wait beyond the horizon (its `tx` is the horizon);
--   3: the checkpoint is not below the horizon (its `tx` is the horizon).
CREATE FUNCTION vigil_read_log(
    p_tx xid8, p_position bigint, p_left_out xid8[], p_types text[], p_prefix text, p_limit integer,
    p_bodies boolean)
RETURNS TABLE (kind integer, tx text, "position" bigint, event_id uuid, stream text, version bigint,
               type text, schema_version integer, data text, metadata text, recorded_at timestamptz)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_sort = off
SET search_path = pg_catalog, public
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH h AS MATERIALIZED (SELECT public.vigil_read_horizon(p_left_out) AS xmin)
    (SELECT 0, e.tx_id::text, e.position, e.event_id, e.stream, e.version, e.type, e.schema_version,
            CASE WHEN p_bodies THEN e.data::text ELSE '' END,
            CASE WHEN p_bodies THEN e.metadata::text ELSE '' END, e.recorded_at
     FROM public.events e
     WHERE (e.tx_id, e.position) > (p_tx, p_position)
       AND e.tx_id < (SELECT h.xmin FROM h)
       AND (p_types IS NULL OR e.type = ANY (p_types))
       AND (p_prefix IS NULL OR starts_with(e.stream, p_prefix))
     ORDER BY e.tx_id, e.position
     LIMIT p_limit)
    UNION ALL
    (SELECT 1, e.tx_id::text, e.position, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
     FROM public.events e WHERE e.tx_id < (SELECT h.xmin FROM h)
     ORDER BY e.tx_id DESC, e.position DESC LIMIT 1)
    UNION ALL
    (SELECT 2, (SELECT h.xmin FROM h)::text, 0::bigint, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
     FROM public.events e
     WHERE (e.tx_id, e.position) > (
         (SELECT greatest(p_tx, h.xmin) FROM h),
         (SELECT CASE WHEN p_tx >= h.xmin THEN p_position ELSE -1 END FROM h))
     ORDER BY e.tx_id, e.position
     LIMIT 1)
    UNION ALL
    (SELECT 3, h.xmin::text, 0::bigint, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
     FROM h WHERE p_tx >= h.xmin);
END;
$$;

-- The group commit's append in one statement (LogWriter.writeInOneStatement, migration 0011):
-- each stream's row bumped by its events, the events numbered after the versions that returns,
-- in the order given, and inserted. Refuses (P0V01, writing nothing) when an event id is
-- stored, a stream is archived or was written by a younger transaction; an id a concurrent
-- writer stored after the statement's snapshot ends on the unique index (23505). Either way the
-- batch then goes through the full append. `checked` is joined in, so its refusals are
-- evaluated before anything is written; the stale and archived checks sit in the stream's
-- update, which sees the row as the lock leaves it (after any writer this statement waited for).
CREATE FUNCTION vigil_append_batch(
    p_ids uuid[], p_streams text[], p_types text[], p_schema_versions integer[], p_data text[],
    p_metadata text[])
RETURNS TABLE (event_id uuid, tx text, "position" bigint, version bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET search_path = pg_catalog, public
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT * FROM unnest(p_ids, p_streams, p_types, p_schema_versions, p_data, p_metadata)
            WITH ORDINALITY AS u(e, s, t, sv, d, m, n)),
    checked AS (
        SELECT CASE WHEN EXISTS (SELECT 1 FROM public.events ev WHERE ev.event_id = ANY (p_ids))
                    THEN public.vigil_append_refused('an event id is stored') ELSE 0 END AS refused),
    counts AS (SELECT i.s AS stream, count(*)::int8 AS k FROM input i GROUP BY i.s),
    bumped AS (
        INSERT INTO public.streams AS st (stream, version, last_tx)
        SELECT c.stream, c.k + ch.refused, pg_current_xact_id() FROM counts c, checked ch ORDER BY c.stream
        ON CONFLICT (stream) DO UPDATE SET
            version = CASE
                WHEN st.last_tx > pg_current_xact_id() THEN public.vigil_append_refused('written by a younger transaction')
                WHEN st.archived_at IS NOT NULL THEN public.vigil_append_refused('archived')
                ELSE st.version + excluded.version END,
            last_tx = pg_current_xact_id()
        RETURNING st.stream, st.version),
    numbered AS (
        SELECT i.*, b.version - c.k + row_number() OVER (PARTITION BY i.s ORDER BY i.n) AS v
        FROM input i JOIN bumped b ON b.stream = i.s JOIN counts c ON c.stream = i.s),
    inserted AS (
        INSERT INTO public.events AS ev (event_id, stream, version, type, schema_version, data, metadata)
        SELECT nb.e, nb.s, nb.v, nb.t, nb.sv, nb.d::jsonb, nb.m::jsonb FROM numbered nb ORDER BY nb.n
        RETURNING ev.event_id, ev.tx_id::text, ev.position, ev.version)
    SELECT * FROM inserted;
END;
$$;
