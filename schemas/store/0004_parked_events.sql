-- Events a projection could not apply, set aside so that the rest of the log keeps flowing.
--
-- When a batch fails with a data error (an event the read model can't hold: a date out of
-- range, a NUL character, a value that breaks a constraint) more than a few times at the same
-- checkpoint, the runner applies the batch again in halves under savepoints until it has
-- isolated the events that fail, records them here with the error, and commits the rest with
-- its checkpoint, in the same transaction. `GET /api/projections` and `/ready` report them;
-- `POST /api/projections/<name>/parked/retry` (or `vigil projections retry NAME`) asks the
-- runner to apply them again after a fix. Rows stay after a successful retry (resolved_at), as
-- a record of what happened.
CREATE TABLE projection_parked_events (
    name               text        NOT NULL,
    generation         integer     NOT NULL,
    tx_id              xid8        NOT NULL,
    position           bigint      NOT NULL,
    event_id           uuid        NOT NULL,
    stream             text        NOT NULL,
    type               text        NOT NULL,
    error              text        NOT NULL,
    attempts           integer     NOT NULL DEFAULT 1,
    parked_at          timestamptz NOT NULL DEFAULT now(),
    retry_requested_at timestamptz,
    last_retry_at      timestamptz,
    resolved_at        timestamptz,
    PRIMARY KEY (name, generation, tx_id, position),
    FOREIGN KEY (name, generation) REFERENCES projection_checkpoints (name, generation) ON DELETE CASCADE
);

-- What status and the runners look for: the unresolved ones.
CREATE INDEX projection_parked_events_open_idx ON projection_parked_events (name, generation)
    WHERE resolved_at IS NULL;
