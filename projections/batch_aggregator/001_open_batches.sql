-- The batch aggregator's open batches, one per camera (an OpenBatch as JSON), written in the
-- same transaction as its checkpoint and the events it appended: after a crash it goes on
-- from exactly what it had decided. (A reactor's DDL runs again at every start: idempotent.)
CREATE TABLE IF NOT EXISTS open_batches (
    camera_id text PRIMARY KEY,
    batch jsonb NOT NULL
);
