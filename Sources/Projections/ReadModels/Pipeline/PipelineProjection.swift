import Domain
import EventStore
import Logging
import PostgresNIO

/// `pipeline`: when each detection happened and was recorded, and when each security event was
/// closed and first analyzed (the log's `recorded_at`), for the pipeline's latencies. Every
/// statement commutes (first times are kept with `least`), so the runs of a page apply in any
/// order.
public struct PipelineProjection: RunBasedProjection {
    public let name = "pipeline"
    public let filter = LogFilter(types: [
        DetectionRecorded.type, SecurityEventClosed.type, SecurityEventAnalyzed.type,
    ])
    public let barriers: Set<String> = []
    public var batchInterval: Duration { BatchInterval.background }

    public init() {}

    public func apply(_ segments: [EventRun.Segment], on connection: PostgresConnection, logger: Logger) async throws {
        try await applyRuns(segments, on: connection, logger: logger) { run in
            switch run.type {
            case DetectionRecorded.type:
                return [
                    run.query { rows in
                        """
                        INSERT INTO pipeline_detections (id, detected_at, recorded_at)
                        SELECT (e.data->>'id')::bigint, (e.data->>'detected_at')::timestamptz, e.recorded_at
                        FROM \(rows) AS e(data, pos, recorded_at)
                        ON CONFLICT (id) DO NOTHING
                        """
                    }
                ]
            case SecurityEventClosed.type:
                return [
                    run.query { rows in
                        """
                        INSERT INTO pipeline_events AS p (id, closed_at, detection_ids)
                        SELECT DISTINCT ON ((e.data->>'id')::bigint) (e.data->>'id')::bigint, e.recorded_at,
                               ARRAY(SELECT jsonb_array_elements_text(e.data->'detection_ids')::bigint)
                        FROM \(rows) AS e(data, pos, recorded_at)
                        ORDER BY (e.data->>'id')::bigint, e.pos
                        ON CONFLICT (id) DO UPDATE SET closed_at = least(p.closed_at, excluded.closed_at),
                            detection_ids = coalesce(p.detection_ids, excluded.detection_ids)
                        """
                    }
                ]
            case SecurityEventAnalyzed.type:
                return [
                    run.query { rows in
                        """
                        INSERT INTO pipeline_events AS p (id, analyzed_at)
                        SELECT (e.data->>'id')::bigint, min(e.recorded_at)
                        FROM \(rows) AS e(data, pos, recorded_at)
                        GROUP BY 1
                        ON CONFLICT (id) DO UPDATE SET analyzed_at = least(p.analyzed_at, excluded.analyzed_at)
                        """
                    }
                ]
            default:
                return []
            }
        }
    }
}
