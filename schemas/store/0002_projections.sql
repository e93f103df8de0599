-- Where every projector (and later every reactor) stands in the log. A projector updates its
-- row in the same transaction as the read-model rows it wrote, so each event is applied
-- exactly once, across crashes.
CREATE TABLE projection_checkpoints (
    name                text        PRIMARY KEY,
    checkpoint_tx       xid8        NOT NULL DEFAULT '0',
    checkpoint_position bigint      NOT NULL DEFAULT 0,
    events_applied      bigint      NOT NULL DEFAULT 0,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- The newest applied event's recorded_at, for lag in seconds.
    last_event_at       timestamptz,
    last_error          text,
    last_error_at       timestamptz
);
