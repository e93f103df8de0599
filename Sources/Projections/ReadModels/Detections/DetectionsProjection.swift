import Domain
import EventStore
import Logging
import PostgresNIO

/// `detections`: the list behind `/api/detections`, with per-camera totals for `count`.
public struct DetectionsProjection: RunBasedProjection {
    public let name = "detections"
    public let filter = LogFilter(types: [DetectionRecorded.type, CameraRemoved.type, CameraRegistered.type])
    /// A removal hides what was recorded before it, and what comes while it stands (until the
    /// camera is registered again: ``RemovedCameras``), so both apply where they stand.
    public let barriers: Set<String> = [CameraRemoved.type, CameraRegistered.type]
    /// 2: `detection_removed_cameras`.
    public let version: Int32 = 2

    /// Its cameras that stand removed (``RemovedCameras``).
    static let removedCameras = "detection_removed_cameras"

    public init() {}

    public func apply(_ segments: [EventRun.Segment], on connection: PostgresConnection, logger: Logger) async throws {
        try await applyRuns(segments, on: connection, logger: logger) { run in
            switch run.type {
            case DetectionRecorded.type:
                return [
                    run.query { rows in
                        """
                        WITH inserted AS (
                            INSERT INTO detections (
                                id, camera_id, file_path, file_type, detected_at, object_type, confidence,
                                bbox_x, bbox_y, bbox_width, bbox_height, thumbnail_path, media_type, duration,
                                video_codec, video_width, video_height, enrichment_data, hidden)
                            SELECT \(DetectionsReadModel.columns), \(RemovedCameras.isRemoved("data->>'camera_id'", in: Self.removedCameras))
                            FROM \(rows) AS e(data, pos)
                            ON CONFLICT (id) DO NOTHING
                            RETURNING camera_id, hidden
                        )
                        \(CameraTotals.add(from: "inserted", to: "detection_totals"))
                        """
                    }
                ]
            case CameraRemoved.type:
                return CameraTotals.hide(run, in: "detections", totals: "detection_totals") + [
                    RemovedCameras.apply(run, in: Self.removedCameras)
                ]
            case CameraRegistered.type:
                return [RemovedCameras.apply(run, in: Self.removedCameras)]
            default:
                return []
            }
        }
    }
}
