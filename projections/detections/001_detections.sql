-- Detections. `hidden`: its camera was removed after it was recorded (soft delete).
CREATE TABLE detections (
    id bigint PRIMARY KEY,
    camera_id text NOT NULL,
    file_path text NOT NULL,
    file_type text,
    detected_at timestamptz NOT NULL,
    object_type text,
    confidence double precision,
    bbox_x integer,
    bbox_y integer,
    bbox_width integer,
    bbox_height integer,
    thumbnail_path text,
    media_type text,
    duration double precision,
    video_codec text,
    video_width integer,
    video_height integer,
    enrichment_data jsonb,
    hidden boolean NOT NULL DEFAULT false
);
-- Keyset pages in (detected_at DESC, id DESC) order (scanned backwards), overall and per
-- filter that narrows by equality.
CREATE INDEX detections_page ON detections (detected_at, id) WHERE NOT hidden;
CREATE INDEX detections_camera_page ON detections (camera_id, detected_at, id) WHERE NOT hidden;
CREATE INDEX detections_object_page ON detections (object_type, detected_at, id) WHERE NOT hidden;

-- Visible detections per camera: `count` without filters (or by camera only) without a scan.
CREATE TABLE detection_totals (
    camera_id text PRIMARY KEY,
    n bigint NOT NULL
);
