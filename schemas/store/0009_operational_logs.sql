-- Operational logs (`/api/logs`): the server's own warnings and errors, and what browsers send
-- through `POST /api/logs/frontend`. Records, not events: they change nothing, so they stay out
-- of the log, and the server deletes them after `VIGIL_LOG_RETENTION_DAYS` (7).
CREATE TABLE operational_logs (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at   timestamptz NOT NULL,
    level       text        NOT NULL CHECK (level IN ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    component   text        NOT NULL,
    message     text        NOT NULL,
    camera_id   text,
    request_id  text,
    duration_ms double precision,
    extra       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    source      text        NOT NULL CHECK (source IN ('backend', 'frontend')),
    url         text,
    user_agent  text,
    received_at timestamptz NOT NULL DEFAULT now()
);
-- Lists are newest first by (logged_at, id), filtered by level, component, camera or source.
CREATE INDEX operational_logs_by_time ON operational_logs (logged_at, id);
CREATE INDEX operational_logs_by_level ON operational_logs (level, logged_at, id);
CREATE INDEX operational_logs_by_component ON operational_logs (component, logged_at, id);
CREATE INDEX operational_logs_by_camera ON operational_logs (camera_id, logged_at, id) WHERE camera_id IS NOT NULL;
