-- The words full-text search looks at.
CREATE FUNCTION security_event_document(summary text, reasoning text, object_types text[]) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN to_tsvector('english'::regconfig,
        coalesce(summary, '') || ' ' || coalesce(reasoning, '') || ' ' || coalesce(array_to_string(object_types, ' '), ''));

-- Security events. The risk level is not stored: the API derives it from risk_score and the
-- severity thresholds in force. `hidden`: its camera was removed (soft delete).
CREATE TABLE security_events (
    id bigint PRIMARY KEY,
    camera_id text NOT NULL,
    batch_id text,
    started_at timestamptz NOT NULL,
    ended_at timestamptz,
    risk_score smallint,
    summary text,
    reasoning text,
    model text,
    reviewed boolean NOT NULL DEFAULT false,
    notes text,
    detection_ids bigint[] NOT NULL DEFAULT '{}',
    object_types text[] NOT NULL DEFAULT '{}',
    is_fast_path boolean NOT NULL DEFAULT false,
    hidden boolean NOT NULL DEFAULT false,
    document tsvector GENERATED ALWAYS AS (security_event_document(summary, reasoning, object_types)) STORED
);
CREATE INDEX security_events_page ON security_events (started_at, id) WHERE NOT hidden;
CREATE INDEX security_events_camera_page ON security_events (camera_id, started_at, id) WHERE NOT hidden;
-- Exact counts for level filters (alone or with a camera) by index-only scans.
CREATE INDEX security_events_camera_score ON security_events (camera_id, risk_score) WHERE NOT hidden;
CREATE INDEX security_events_score ON security_events (risk_score) WHERE NOT hidden;
CREATE INDEX security_events_object_types ON security_events USING gin (object_types) WHERE NOT hidden;
CREATE INDEX security_events_document ON security_events USING gin (document) WHERE NOT hidden;
