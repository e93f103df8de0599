-- Issued API keys, revoked ones included (revoked_at set). Only a SHA-256 of each secret.
CREATE TABLE api_keys (
    id text PRIMARY KEY, -- the key's name
    role text NOT NULL,
    secret_hash text NOT NULL,
    prefix text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX api_keys_by_created ON api_keys (created_at, id);
