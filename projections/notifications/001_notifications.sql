-- Notification preferences (`/api/notification-preferences`): the global ones (one row once
-- changed; the defaults before), each camera's setting once changed, and the quiet hours.
CREATE TABLE notification_preferences (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    preferences jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);
-- `id` is the camera's id.
CREATE TABLE camera_notification_settings (
    id text PRIMARY KEY,
    enabled boolean NOT NULL,
    risk_threshold integer,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX camera_notification_settings_by_time ON camera_notification_settings (created_at, id);
CREATE TABLE quiet_hours (
    id text PRIMARY KEY,
    period jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX quiet_hours_by_time ON quiet_hours (created_at, id);
