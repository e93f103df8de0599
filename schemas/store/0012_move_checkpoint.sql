-- A runner's checkpoint move (ProjectionRunner.moveCheckpoint), the statement every batch of
-- every read model ends with: compare and set from where the runner read to where its page
-- ended, counting the events applied, and NOTIFY read-your-writes waiters when it moved.
--
-- A function because its statements may keep one plan. Vigil's sessions plan every statement at
-- every call (plan_cache_mode = force_custom_plan, see PostgresSettings): right for statements
-- over tables that grow, wasted here, where both tables hold a row or two per read model and
-- every lookup is by primary key. Planning the one statement this replaces cost more than
-- running it (0.08–0.14 ms against 0.03–0.1; docs/BENCHMARKS.md, Ingest, session 43). Its own
-- search_path keeps the cached plans valid whichever read model's schema the caller's
-- transaction has first in its path.
--
-- p_standalone: the move is its own transaction (a page with nothing to apply), so it first
-- holds the projection's row as a batch does and refuses (live = false) when p_generation is no
-- longer the live one. moved = false: the checkpoint was not where the caller read from.
CREATE FUNCTION vigil_move_checkpoint(
    p_name text, p_generation integer,
    p_from_tx xid8, p_from_position bigint, p_to_tx xid8, p_to_position bigint,
    p_applied bigint, p_last_event_at timestamptz, p_standalone boolean,
    p_channel text, p_payload text,
    OUT moved boolean, OUT live boolean)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET search_path = pg_catalog, public
AS $$
BEGIN
    moved := false;
    live := true;
    IF p_standalone THEN
        PERFORM 1 FROM public.projections
        WHERE name = p_name AND live_generation = p_generation
        FOR SHARE;
        live := FOUND;
        IF NOT live THEN
            RETURN;
        END IF;
    END IF;
    UPDATE public.projection_checkpoints
    SET checkpoint_tx = p_to_tx, checkpoint_position = p_to_position,
        events_applied = events_applied + p_applied,
        last_event_at = coalesce(p_last_event_at, last_event_at),
        updated_at = now(), last_error = NULL, last_error_at = NULL
    WHERE name = p_name AND generation = p_generation
      AND (checkpoint_tx, checkpoint_position) = (p_from_tx, p_from_position);
    moved := FOUND;
    IF moved AND (p_to_tx, p_to_position) <> (p_from_tx, p_from_position) THEN
        PERFORM pg_notify(p_channel, p_payload);
    END IF;
END;
$$;
