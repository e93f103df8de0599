-- Alert rules (`/api/alerts/rules`): each rule's definition as its events carry it (the API's
-- shape), with the columns the list filters on; a deleted rule's row is gone.
CREATE TABLE alert_rules (
    id text PRIMARY KEY,
    enabled boolean NOT NULL,
    severity text NOT NULL,
    definition jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX alert_rules_by_time ON alert_rules (created_at, id);
