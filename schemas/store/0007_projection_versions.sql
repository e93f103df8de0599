-- The version of the projection code that built each generation. A read model whose code
-- changes what it stores (a new table, a new column, another meaning) declares a higher
-- version (`Projection.version`); a server that finds the live generation built by an older
-- version starts a rebuild into a new generation, and the old one serves until it is swapped.
ALTER TABLE projection_checkpoints ADD COLUMN projection_version integer NOT NULL DEFAULT 1;
