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
