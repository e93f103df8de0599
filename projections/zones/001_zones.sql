-- Zones drawn on cameras' pictures (`/api/cameras/{camera_id}/zones`); a deleted zone's row
-- is gone.
CREATE TABLE zones (
    id text PRIMARY KEY,
    camera_id text NOT NULL,
    name text NOT NULL,
    zone_type text NOT NULL,
    coordinates jsonb NOT NULL,
    shape text NOT NULL,
    color text NOT NULL,
    enabled boolean NOT NULL,
    priority integer NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX zones_by_camera ON zones (camera_id, created_at, id);
