-- Retention (`POST /api/system/cleanup`): security events older than `retention_days`, with
-- their detections and alerts, leave the hot table for an LZ4 archive segment (the export
-- format, Sources/Archive) written and synced before they are deleted, in one transaction
-- with the segment's record here and the archived streams' marks.

-- An archived stream takes no more events: its history is in a segment, and an event appended
-- after it would reach read models that no longer know the stream.
ALTER TABLE streams ADD COLUMN archived_at timestamptz;

-- Every segment retention wrote, in the order written. A file in the archive folder without
-- its row here is what a failed run left (its events are still in the table) and is removed.
CREATE TABLE log_archive_segments (
    name           text        PRIMARY KEY,
    created_at     timestamptz NOT NULL DEFAULT now(),
    cutoff         timestamptz NOT NULL,
    log_events     bigint      NOT NULL,
    first_position bigint      NOT NULL,
    last_position  bigint      NOT NULL,
    file_bytes     bigint      NOT NULL,
    sha256         text        NOT NULL
);

-- The log stays append-only, but for retention's own deletes: a transaction that sets
-- `vigil.retention` to `on` (SET LOCAL, after writing its segment) may delete events.
CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('vigil.retention', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the event log is append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

-- The segments a rebuild of a read model that keeps archived history (the audit trail) has
-- replayed into a generation, each in the transaction that applied it: a rebuild that stops
-- half-way goes on with the next segment.
CREATE TABLE projection_archive_replays (
    name       text    NOT NULL,
    generation integer NOT NULL,
    segment    text    NOT NULL REFERENCES log_archive_segments (name),
    PRIMARY KEY (name, generation, segment)
);
