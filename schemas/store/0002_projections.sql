-- Projections (read models built from the log) and where each stands.
--
-- A projection's tables live in a schema of their own per generation
-- (projection_<name>_<generation>); views in public with the tables' names point at the live
-- generation. A rebuild fills generation n+1 from the start of the log while n keeps serving,
-- then swaps the views in one transaction.
CREATE TABLE projections (
    name                 text        PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$'),
    live_generation      integer     NOT NULL DEFAULT 1,
    rebuild_generation   integer,
    rebuild_requested_at timestamptz
);

-- One row per generation. A projector updates its row in the same transaction as the
-- read-model rows it wrote, so each event is applied exactly once, across crashes.
CREATE TABLE projection_checkpoints (
    name                text        NOT NULL REFERENCES projections (name),
    generation          integer     NOT NULL,
    checkpoint_tx       xid8        NOT NULL DEFAULT '0',
    checkpoint_position bigint      NOT NULL DEFAULT 0,
    events_applied      bigint      NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- The newest applied event's recorded_at, for lag in seconds.
    last_event_at       timestamptz,
    last_error          text,
    last_error_at       timestamptz,
    PRIMARY KEY (name, generation)
);
