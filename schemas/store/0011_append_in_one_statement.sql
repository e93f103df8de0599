-- The group commit's append in one statement (LogWriter.writeInOneStatement) refuses, writing
-- nothing, whenever a decision only the full append makes could apply: an event id already
-- stored, an archived stream, a stream written by a younger transaction. The statement then
-- fails with SQLSTATE P0V01 and the batch goes through the full append, whose answers are the
-- rule.
CREATE FUNCTION vigil_append_refused(reason text) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the one-statement append defers to the full append: %', reason
        USING ERRCODE = 'P0V01';
END;
$$;
