-- A session marked as a read model's runner (application_name 'vigil read model', set by the
-- runner on its lease connection between transactions) writes read-model tables only. The
-- read horizon leaves its transactions out (ReadHorizon in Sources/EventStore), so a long
-- read-model batch holds no tail back; that is only sound if such a transaction can never add
-- an event, which this trigger makes sure of: an append from a marked session fails, loudly,
-- instead of slipping an event below a horizon readers have passed.
CREATE FUNCTION events_refuse_read_model_sessions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('application_name') = 'vigil read model' THEN
        RAISE EXCEPTION 'a read model''s runner may not append events (its transactions are left out of the read horizon)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_refuse_read_model_sessions
    BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_read_model_sessions();
