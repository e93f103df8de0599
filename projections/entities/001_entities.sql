-- Re-identified entities (`/api/entities`): one row per entity with its summary, and one row
-- per sighting (its history). `last_detection_id` is the newest sighting's detection, for the
-- thumbnail.
CREATE TABLE entities (
    id text PRIMARY KEY,
    entity_type text NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    appearance_count integer NOT NULL,
    cameras_seen text[] NOT NULL,
    trust_status text NOT NULL,
    last_detection_id bigint
);
CREATE INDEX entities_by_last_seen ON entities (last_seen, id);
CREATE TABLE entity_sightings (
    entity_id text NOT NULL,
    position bigint NOT NULL,
    detection_id bigint,
    camera_id text NOT NULL,
    seen_at timestamptz NOT NULL,
    similarity double precision,
    attributes jsonb,
    PRIMARY KEY (entity_id, position)
);
CREATE INDEX entity_sightings_by_camera ON entity_sightings (camera_id, entity_id);
CREATE INDEX entity_sightings_by_time ON entity_sightings (entity_id, seen_at, position);
