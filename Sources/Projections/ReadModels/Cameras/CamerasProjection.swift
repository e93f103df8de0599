import Domain
import EventStore
import Logging
import PostgresNIO

/// `cameras`: every registered camera, its status, and when it last recorded a detection.
public struct CamerasProjection: RunBasedProjection {
    public let name = "cameras"
    public let filter = LogFilter(types: [
        CameraRegistered.type, CameraUpdated.type, CameraRemoved.type, DetectionRecorded.type,
    ])
    /// Lifecycle events apply where they stand; detections between them only touch
    /// `last_seen_at` of cameras that exist, so they can be grouped.
    public let barriers: Set<String> = [CameraRegistered.type, CameraUpdated.type, CameraRemoved.type]
    public var batchInterval: Duration { BatchInterval.background }

    public init() {}

    public func apply(_ segments: [EventRun.Segment], on connection: PostgresConnection, logger: Logger) async throws {
        try await applyRuns(segments, on: connection, logger: logger) { run in
            switch run.type {
            case CameraRegistered.type:
                return [
                    run.query { rows in
                        """
                        INSERT INTO cameras (id, name, folder_path, status, created_at)
                        SELECT DISTINCT ON (data->>'id') data->>'id', data->>'name', data->>'folder_path',
                               data->>'status', (data->>'registered_at')::timestamptz
                        FROM \(rows) AS e(data, pos)
                        ORDER BY data->>'id', pos DESC
                        ON CONFLICT (id) DO UPDATE SET
                            name = excluded.name, folder_path = excluded.folder_path, status = excluded.status,
                            created_at = excluded.created_at, updated_at = NULL, last_seen_at = NULL, removed_at = NULL
                        """
                    }
                ]
            case CameraUpdated.type:
                return [
                    run.query { rows in
                        """
                        UPDATE cameras c SET
                            name = coalesce(u.name, c.name),
                            folder_path = coalesce(u.folder_path, c.folder_path),
                            status = coalesce(u.status, c.status),
                            updated_at = u.updated_at
                        FROM (
                            SELECT data->>'id' AS id,
                                   (array_agg(data->>'name' ORDER BY pos DESC) FILTER (WHERE data ? 'name'))[1] AS name,
                                   (array_agg(data->>'folder_path' ORDER BY pos DESC)
                                       FILTER (WHERE data ? 'folder_path'))[1] AS folder_path,
                                   (array_agg(data->>'status' ORDER BY pos DESC) FILTER (WHERE data ? 'status'))[1] AS status,
                                   max((data->>'updated_at')::timestamptz) AS updated_at
                            FROM \(rows) AS e(data, pos)
                            GROUP BY 1
                        ) u
                        WHERE c.id = u.id
                        """
                    }
                ]
            case CameraRemoved.type:
                return [
                    run.query { rows in
                        """
                        UPDATE cameras c SET removed_at = r.removed_at
                        FROM (
                            SELECT data->>'id' AS id, max((data->>'removed_at')::timestamptz) AS removed_at
                            FROM \(rows) AS e(data, pos) GROUP BY 1
                        ) r
                        WHERE c.id = r.id
                        """
                    }
                ]
            case DetectionRecorded.type:
                return [
                    run.query { rows in
                        """
                        UPDATE cameras c SET last_seen_at = greatest(c.last_seen_at, d.seen)
                        FROM (
                            SELECT data->>'camera_id' AS id, max((data->>'detected_at')::timestamptz) AS seen
                            FROM \(rows) AS e(data, pos) GROUP BY 1
                        ) d
                        WHERE c.id = d.id AND c.removed_at IS NULL
                        """
                    }
                ]
            default:
                return []
            }
        }
    }
}
