-- Alerts (`/api/alerts`): one row per AlertTriggered, its status and times as the alert's later
-- events (acknowledged, dismissed, delivered) set them. `hidden`: its camera was removed
-- (soft delete, as its security events are).
CREATE TABLE alerts (
    id text PRIMARY KEY,
    event_id bigint NOT NULL,
    rule_id text NOT NULL,
    rule_name text NOT NULL,
    severity text NOT NULL,
    status text NOT NULL,
    channels jsonb NOT NULL,
    dedup_key text NOT NULL,
    camera_id text NOT NULL,
    metadata jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    delivered_at timestamptz,
    acknowledged_at timestamptz,
    dismissed_at timestamptz,
    hidden boolean NOT NULL DEFAULT false
);
CREATE INDEX alerts_by_time ON alerts (created_at, id) WHERE NOT hidden;
CREATE INDEX alerts_by_event ON alerts (event_id);
