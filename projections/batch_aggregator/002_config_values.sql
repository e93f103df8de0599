-- The system configuration values set so far (SystemConfigChanged, in log order), as one JSON
-- object, written with the checkpoint: the batch policy is the server's defaults with these
-- applied, so a change takes effect exactly from its position in the log. Added after the
-- first release of the aggregator; a reactor is never rebuilt, so its live generation gets
-- this table when the server starts (idempotent DDL).
CREATE TABLE IF NOT EXISTS config_values (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    config_values jsonb NOT NULL
);
