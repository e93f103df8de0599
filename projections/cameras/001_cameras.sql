-- Cameras, including removed ones (removed_at set): the API lists those without it.
CREATE TABLE cameras (
    id text PRIMARY KEY,
    name text NOT NULL,
    folder_path text NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz,
    last_seen_at timestamptz,
    removed_at timestamptz
);
CREATE INDEX cameras_by_name ON cameras (name, id) WHERE removed_at IS NULL;
