-- How much each API key is used: operational counters, not events (a read is not a change,
-- and the log would grow with every request). Each server counts in memory and adds its counts
-- here every few seconds, so the counters are the sum over every instance. `GET /api/api-keys`
-- shows them; rebuilding the `api_keys` read model leaves them alone.
CREATE TABLE api_key_usage (
    name            text        PRIMARY KEY,
    requests        bigint      NOT NULL DEFAULT 0,
    refused         bigint      NOT NULL DEFAULT 0,
    last_used_at    timestamptz,
    last_used_from  text
);
