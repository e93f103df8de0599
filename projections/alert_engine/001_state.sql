-- The rule engine's state, written in the same transaction as its checkpoint and the alerts it
-- appended. (A reactor's DDL runs again at every start: idempotent.)
-- The rules in force where the engine stands in the log (AlertRuleCreated/Updated/Deleted).
CREATE TABLE IF NOT EXISTS alert_engine_rules (
    id text PRIMARY KEY,
    definition jsonb NOT NULL
);
-- The zones in force there (ZoneCreated/Updated/Deleted): a rule's zone_ids name them.
CREATE TABLE IF NOT EXISTS alert_engine_zones (
    id text PRIMARY KEY,
    camera_id text NOT NULL,
    definition jsonb NOT NULL
);
-- When each dedup key last fired (by the analysis's log time): the cooldown.
CREATE TABLE IF NOT EXISTS alert_engine_cooldowns (
    dedup_key text PRIMARY KEY,
    fired_at timestamptz NOT NULL
);
-- Every alert fired: a rule fires once per security event, whatever reanalyses follow.
CREATE TABLE IF NOT EXISTS alert_engine_fired (
    id text PRIMARY KEY
);
-- The webhook outbox: a row per alert of a rule with the `webhook` channel and per configured
-- URL, written with the alert. The deliverer claims due rows (next_attempt_at), deletes a row
-- once delivered, and parks it (parked_at, last_error) after its last attempt.
CREATE TABLE IF NOT EXISTS alert_webhooks (
    delivery_id uuid PRIMARY KEY,
    alert_id text NOT NULL,
    url text NOT NULL,
    alert jsonb NOT NULL,
    attempts int NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    last_error text,
    parked_at timestamptz
);
CREATE INDEX IF NOT EXISTS alert_webhooks_due ON alert_webhooks (next_attempt_at) WHERE parked_at IS NULL;
