-- Visible events per camera and score (-1: not analyzed yet): the exact count of a list
-- filtered by camera and/or level at most, and the stats over all history, from at most 102
-- rows a camera instead of the events' rows. A score no visible event has is no row.
CREATE TABLE security_event_scores (
    camera_id text NOT NULL,
    score smallint NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (camera_id, score)
);
