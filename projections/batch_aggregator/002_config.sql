-- The system configuration values set so far (SystemConfigChanged, in log order), as one JSON
-- object: the batch policy is the server's defaults with these applied, so a change takes
-- effect exactly from its position in the log.
CREATE TABLE config_values (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    config_values jsonb NOT NULL
);
