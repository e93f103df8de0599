-- Secondary indexes a rebuild builds after its bulk load, not row by row during it.
--
-- A rebuild's new generation is created with its tables' non-unique indexes dropped (their
-- definitions kept here; unique ones stay: they decide `ON CONFLICT`). When the rebuild has
-- nearly caught up with the log, and before the generation serves a query, the runner creates
-- them in one transaction and empties the list. A live generation never has any.
ALTER TABLE projection_checkpoints ADD COLUMN deferred_indexes text[] NOT NULL DEFAULT '{}';
