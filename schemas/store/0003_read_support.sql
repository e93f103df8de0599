-- Public integer ids of detections and security events. Writers take them from these
-- sequences and put them in the event's data, so a rebuild reproduces the same ids.
CREATE SEQUENCE detection_ids AS bigint;
CREATE SEQUENCE security_event_ids AS bigint;

-- The API's timestamp format: ISO 8601, UTC, microseconds, `Z`. Also the `created_at` of
-- pagination cursors, which must round-trip exactly.
CREATE FUNCTION vigil_ts(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
