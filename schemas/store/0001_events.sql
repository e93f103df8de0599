-- The event log: one append-only table, the single source of truth.
--
-- Global order is (tx_id, position), not position alone: a transaction that took
-- position 11 may commit before the one that took 10. Readers only take rows whose
-- writing transaction is older than every transaction still running
-- (tx_id < pg_snapshot_xmin(pg_current_snapshot())), so a row can never appear
-- behind a checkpoint a reader has already passed.
CREATE TABLE events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid        NOT NULL,
    stream          text        NOT NULL,
    version         bigint      NOT NULL,
    type            text        NOT NULL,
    schema_version  integer     NOT NULL DEFAULT 1,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream, version),
    CONSTRAINT events_version_positive CHECK (version >= 1),
    CONSTRAINT events_stream_not_empty CHECK (stream <> ''),
    CONSTRAINT events_type_not_empty CHECK (type <> '')
);

-- The reading order of the whole log.
CREATE INDEX events_tx_position_idx ON events (tx_id, position);

-- Current version of every stream. Appends lock the stream's row, which
-- serialises writers of one stream (versions commit in order) and lets writers
-- of different streams proceed in parallel.
--
-- last_tx is the transaction that wrote the stream's newest event. A transaction
-- may only append to a stream if it is not older than that one: otherwise its
-- events would sort before the stream's earlier versions in the log order. The
-- writer then retries in a new (younger) transaction.
CREATE TABLE streams (
    stream  text   PRIMARY KEY,
    version bigint NOT NULL DEFAULT 0,
    last_tx xid8
);

-- Wake live readers. The payload is the highest position written by the
-- statement: a hint only, readers always re-read the table.
CREATE FUNCTION events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vigil_events', (SELECT coalesce(max(position), 0)::text FROM new_rows));
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify_after_insert
    AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

-- The log is append-only: refuse UPDATE and DELETE (TRUNCATE stays possible for
-- deliberate maintenance, e.g. restoring a store from an archive).
CREATE FUNCTION events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER events_append_only_guard
    BEFORE UPDATE OR DELETE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();
