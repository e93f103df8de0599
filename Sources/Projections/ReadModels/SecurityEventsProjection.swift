import Domain
import EventStore
import Logging
import PostgresNIO

/// `security_events`: the list behind `/api/events`, searchable, with per-camera totals.
public struct SecurityEventsProjection: Projection {
    public let name = "security_events"
    public let filter = LogFilter(types: [
        SecurityEventOpened.type, SecurityEventClosed.type, SecurityEventAnalyzed.type, SecurityEventReviewed.type,
        CameraRemoved.type,
    ])

    public init() {}

    public func apply(_ events: [RecordedEvent], on connection: PostgresConnection, logger: Logger) async throws {
        // Between camera removals: an event is opened (inserted) before anything else happens
        // to it, and closing, analysis and review each set columns of their own, each keeping
        // the last per event; so inserts first, then the updates by type, give the log's result.
        try await applyRuns(
            events,
            barriers: [CameraRemoved.type],
            order: [
                SecurityEventOpened.type, SecurityEventClosed.type, SecurityEventAnalyzed.type,
                SecurityEventReviewed.type,
            ],
            on: connection,
            logger: logger
        ) { run in
            let (data, positions) = (run.data, run.positions)
            switch run.type {
            case SecurityEventOpened.type:
                return [
                    """
                    WITH inserted AS (
                        INSERT INTO security_events (
                            id, camera_id, batch_id, started_at, detection_ids, object_types, is_fast_path)
                        SELECT (data->>'id')::bigint, data->>'camera_id', data->>'batch_id',
                               (data->>'started_at')::timestamptz,
                               ARRAY(SELECT jsonb_array_elements_text(data->'detection_ids')::bigint),
                               ARRAY(SELECT jsonb_array_elements_text(data->'object_types')),
                               coalesce((data->>'is_fast_path')::boolean, false)
                        FROM unnest(\(data)::jsonb[]) AS e(data)
                        ON CONFLICT (id) DO NOTHING
                        RETURNING camera_id
                    )
                    INSERT INTO security_event_totals (camera_id, n)
                    SELECT camera_id, count(*) FROM inserted GROUP BY camera_id
                    ON CONFLICT (camera_id) DO UPDATE SET n = security_event_totals.n + excluded.n
                    """
                ]
            case SecurityEventClosed.type:
                return [
                    """
                    UPDATE security_events s SET
                        ended_at = (c.data->>'ended_at')::timestamptz,
                        detection_ids = ARRAY(SELECT jsonb_array_elements_text(c.data->'detection_ids')::bigint),
                        object_types = ARRAY(SELECT jsonb_array_elements_text(c.data->'object_types'))
                    FROM (
                        SELECT DISTINCT ON ((data->>'id')::bigint) (data->>'id')::bigint AS id, data
                        FROM unnest(\(data)::jsonb[], \(positions)::bigint[]) AS e(data, pos)
                        ORDER BY (data->>'id')::bigint, pos DESC
                    ) c
                    WHERE s.id = c.id
                    """
                ]
            case SecurityEventAnalyzed.type:
                return [
                    """
                    UPDATE security_events s SET
                        risk_score = (a.data->>'risk_score')::smallint,
                        summary = a.data->>'summary',
                        reasoning = a.data->>'reasoning',
                        model = a.data->>'model'
                    FROM (
                        SELECT DISTINCT ON ((data->>'id')::bigint) (data->>'id')::bigint AS id, data
                        FROM unnest(\(data)::jsonb[], \(positions)::bigint[]) AS e(data, pos)
                        ORDER BY (data->>'id')::bigint, pos DESC
                    ) a
                    WHERE s.id = a.id
                    """
                ]
            case SecurityEventReviewed.type:
                return [
                    """
                    UPDATE security_events s SET
                        reviewed = coalesce(r.reviewed, s.reviewed),
                        notes = coalesce(r.notes, s.notes)
                    FROM (
                        SELECT (data->>'id')::bigint AS id,
                               (array_agg((data->>'reviewed')::boolean ORDER BY pos DESC)
                                   FILTER (WHERE data ? 'reviewed'))[1] AS reviewed,
                               (array_agg(data->>'notes' ORDER BY pos DESC) FILTER (WHERE data ? 'notes'))[1] AS notes
                        FROM unnest(\(data)::jsonb[], \(positions)::bigint[]) AS e(data, pos)
                        GROUP BY 1
                    ) r
                    WHERE s.id = r.id
                    """
                ]
            case CameraRemoved.type:
                return [
                    """
                    UPDATE security_events SET hidden = true
                    WHERE NOT hidden AND camera_id = ANY (ARRAY(SELECT data->>'id' FROM unnest(\(data)::jsonb[]) AS e(data)))
                    """,
                    """
                    UPDATE security_event_totals SET n = 0
                    WHERE camera_id = ANY (ARRAY(SELECT data->>'id' FROM unnest(\(data)::jsonb[]) AS e(data)))
                    """,
                ]
            default:
                return []
            }
        }
    }
}

/// The read models `vigil serve` keeps up to date, by name.
public enum ReadModels {
    public static let all: [any Projection] = [
        CamerasProjection(), DetectionsProjection(), SecurityEventsProjection(),
    ]

    public static func named(_ name: String) -> (any Projection)? { all.first { $0.name == name } }
}
