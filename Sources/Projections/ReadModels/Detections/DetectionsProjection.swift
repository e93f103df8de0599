import Domain
import EventStore
import Logging
import PostgresNIO

/// `detections`: the list behind `/api/detections`, with per-camera totals for `count`.
public struct DetectionsProjection: Projection {
    public let name = "detections"
    public let filter = LogFilter(types: [DetectionRecorded.type, CameraRemoved.type])

    public init() {}

    public func apply(_ events: [RecordedEvent], on connection: PostgresConnection, logger: Logger) async throws {
        // A removal hides what was recorded before it, so it applies where it stands.
        try await applyRuns(events, barriers: [CameraRemoved.type], on: connection, logger: logger) { run in
            let data = run.data
            switch run.type {
            case DetectionRecorded.type:
                return [
                    """
                    WITH inserted AS (
                        INSERT INTO detections (
                            id, camera_id, file_path, file_type, detected_at, object_type, confidence,
                            bbox_x, bbox_y, bbox_width, bbox_height, thumbnail_path, media_type, duration,
                            video_codec, video_width, video_height, enrichment_data)
                        SELECT \(unescaped: DetectionsReadModel.columns)
                        FROM unnest(\(data)::jsonb[]) AS e(data)
                        ON CONFLICT (id) DO NOTHING
                        RETURNING camera_id
                    )
                    \(unescaped: CameraTotals.add(from: "inserted", to: "detection_totals"))
                    """
                ]
            case CameraRemoved.type:
                return CameraTotals.hide(run, in: "detections", totals: "detection_totals")
            default:
                return []
            }
        }
    }
}
