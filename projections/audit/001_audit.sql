-- The audit trail: one entry per audited event of the log; its id is the event's log position.
CREATE TABLE audit_log (
    id bigint PRIMARY KEY,
    logged_at timestamptz NOT NULL,
    action text NOT NULL,
    resource_type text NOT NULL,
    resource_id text,
    actor text NOT NULL,
    ip_address text,
    user_agent text,
    details jsonb NOT NULL,
    status text NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log (logged_at, id);
CREATE INDEX audit_log_by_actor ON audit_log (actor, logged_at, id);
CREATE INDEX audit_log_by_resource ON audit_log (resource_type, resource_id, logged_at, id);

-- What the trail remembers to tell old values: each security event's review state, each
-- camera's fields.
CREATE TABLE audit_reviews (
    event_id bigint PRIMARY KEY,
    reviewed boolean NOT NULL,
    notes text
);
CREATE TABLE audit_cameras (
    id text PRIMARY KEY,
    name text NOT NULL,
    folder_path text NOT NULL,
    status text NOT NULL
);
