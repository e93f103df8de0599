-- An open batch's detection ids, one row each, apart from the rest of the batch (`batch`
-- keeps them empty): a page inserts only its new ids. Writing them in the batch's JSON, or
-- as one array, made every page rewrite (and compress) every open batch whole, a cost that
-- grew with the batch: tens of thousands of ids in a 90 s window at hundreds of
-- detections/s. A row written before this table keeps its ids in `batch`.
CREATE TABLE IF NOT EXISTS open_batch_detections (
    camera_id text NOT NULL,
    position int4 NOT NULL,
    detection_id int8 NOT NULL
);
CREATE INDEX IF NOT EXISTS open_batch_detections_camera ON open_batch_detections (camera_id, position);

-- Changes with every write of the open batches: a runner that holds what it wrote last (the
-- token still matches) goes on from memory instead of reading every batch again.
CREATE TABLE IF NOT EXISTS open_batches_token (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    token uuid NOT NULL
);
