import Domain
import EventStore
import Logging
import PostgresNIO

/// `entities` and `entity_sightings`: each entity's summary and its appearances. A run of
/// sightings inserts its rows, then folds them into the summaries (first and last seen,
/// count, cameras, newest detection) in one statement; a trust change is a barrier.
public struct EntitiesProjection: RunBasedProjection {
    public let name = "entities"
    public let filter = LogFilter(types: [EntitySighted.type, EntityTrustChanged.type])
    public let barriers: Set<String> = [EntityTrustChanged.type]

    public init() {}

    public func apply(_ segments: [EventRun.Segment], on connection: PostgresConnection, logger: Logger) async throws {
        try await applyRuns(segments, on: connection, logger: logger) { run in
            switch run.type {
            case EntitySighted.type:
                return [
                    run.query { rows in
                        """
                        INSERT INTO entity_sightings
                            (entity_id, position, detection_id, camera_id, seen_at, similarity, attributes)
                        SELECT e.data->>'entity_id', e.pos, (e.data->>'detection_id')::bigint, e.data->>'camera_id',
                               (e.data->>'seen_at')::timestamptz, (e.data->>'similarity')::double precision,
                               e.data->'attributes'
                        FROM \(rows) AS e(data, pos)
                        ON CONFLICT DO NOTHING
                        """
                    },
                    run.query { rows in
                        """
                        INSERT INTO entities AS t (id, entity_type, first_seen, last_seen, appearance_count,
                                                   cameras_seen, trust_status, last_detection_id)
                        SELECT a.id, a.entity_type, a.first_seen, a.last_seen, a.n, a.cameras, 'unknown', a.detection
                        FROM (
                            SELECT e.data->>'entity_id' AS id,
                                   (array_agg(e.data->>'entity_type' ORDER BY e.pos))[1] AS entity_type,
                                   min((e.data->>'seen_at')::timestamptz) AS first_seen,
                                   max((e.data->>'seen_at')::timestamptz) AS last_seen, count(*)::int AS n,
                                   array_agg(DISTINCT e.data->>'camera_id' ORDER BY e.data->>'camera_id') AS cameras,
                                   (array_agg((e.data->>'detection_id')::bigint
                                              ORDER BY (e.data->>'seen_at')::timestamptz DESC, e.pos DESC))[1]
                                       AS detection
                            FROM \(rows) AS e(data, pos) GROUP BY 1
                        ) a
                        ON CONFLICT (id) DO UPDATE SET
                            first_seen = least(t.first_seen, excluded.first_seen),
                            last_seen = greatest(t.last_seen, excluded.last_seen),
                            appearance_count = t.appearance_count + excluded.appearance_count,
                            cameras_seen = (SELECT array_agg(DISTINCT c ORDER BY c)
                                            FROM unnest(t.cameras_seen || excluded.cameras_seen) AS c),
                            last_detection_id = CASE WHEN excluded.last_seen >= t.last_seen
                                                     THEN excluded.last_detection_id ELSE t.last_detection_id END
                        """
                    },
                ]
            case EntityTrustChanged.type:
                return [
                    run.query { rows in
                        """
                        UPDATE entities AS t SET trust_status = u.trust
                        FROM (SELECT DISTINCT ON (e.data->>'entity_id') e.data->>'entity_id' AS id,
                                     e.data->>'trust_status' AS trust
                              FROM \(rows) AS e(data, pos) ORDER BY e.data->>'entity_id', e.pos DESC) AS u
                        WHERE t.id = u.id
                        """
                    }
                ]
            default:
                return []
            }
        }
    }
}
