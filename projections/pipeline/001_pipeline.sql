-- The pipeline's stage times, from the log's own clock (`recorded_at`) and the cameras'
-- (`detected_at`): what /api/system/pipeline-latency and /api/system/telemetry measure.
CREATE TABLE pipeline_detections (
    id bigint PRIMARY KEY,
    detected_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX pipeline_detections_recorded ON pipeline_detections (recorded_at);

-- A security event's close and first analysis; `detection_ids` from its close.
CREATE TABLE pipeline_events (
    id bigint PRIMARY KEY,
    closed_at timestamptz,
    analyzed_at timestamptz,
    detection_ids bigint[]
);
CREATE INDEX pipeline_events_closed ON pipeline_events (closed_at);
CREATE INDEX pipeline_events_analyzed ON pipeline_events (analyzed_at);
