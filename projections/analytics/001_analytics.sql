-- Facts for the dashboards, by UTC day (`/api/analytics/*`). Levels are never stored: risk
-- scores are kept as histograms (one row per day, camera and score 0–100), so the counts per
-- level under any thresholds come out at query time. A removed camera's rows are deleted
-- (its events are hidden from the lists as well).

-- Detections per day, camera and object type (all of them, also those below the batching
-- confidence threshold: they are recorded facts, as in /api/detections).
CREATE TABLE analytics_detections (
    day date NOT NULL,
    camera_id text NOT NULL,
    object_type text NOT NULL,
    detections bigint NOT NULL,
    PRIMARY KEY (day, camera_id, object_type)
);
CREATE INDEX analytics_detections_camera ON analytics_detections (camera_id, day);

-- Every security event's day, camera and current score (null until analyzed): what a new
-- analysis of the event moves in the histograms.
CREATE TABLE analytics_events (
    id bigint PRIMARY KEY,
    camera_id text NOT NULL,
    day date NOT NULL,
    score smallint
);
CREATE INDEX analytics_events_camera ON analytics_events (camera_id);

-- Analyzed events per day (of started_at), camera and score.
CREATE TABLE analytics_scores (
    day date NOT NULL,
    camera_id text NOT NULL,
    score smallint NOT NULL,
    events bigint NOT NULL,
    PRIMARY KEY (day, camera_id, score)
);
CREATE INDEX analytics_scores_camera ON analytics_scores (camera_id, day);

-- The same over all history, per camera: what the severity preview reads.
CREATE TABLE analytics_score_totals (
    camera_id text NOT NULL,
    score smallint NOT NULL,
    events bigint NOT NULL,
    PRIMARY KEY (camera_id, score)
);
