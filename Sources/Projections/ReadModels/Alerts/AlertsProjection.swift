import Domain
import EventStore
import Logging
import PostgresNIO

/// `alerts`: every alert the rule engine raised, with its status and times, as `/api/alerts`
/// lists them. Every alert event is a barrier (an alert's trigger, delivery, acknowledgement
/// and dismissal must apply in order). A camera's removal hides its alerts, as it hides its
/// security events, and so do alerts raised for it while it stands removed
/// (``RemovedCameras``): the camera events are barriers too.
public struct AlertsProjection: RunBasedProjection {
    public let name = "alerts"
    static let types = [
        AlertTriggered.type, AlertDelivered.type, AlertAcknowledged.type, AlertDismissed.type, CameraRemoved.type,
        CameraRegistered.type,
    ]
    public let filter = LogFilter(types: Self.types)
    public let barriers = Set(Self.types)
    /// 2: `hidden`, `alert_removed_cameras` (alerts of a removed camera stayed listed).
    public let version: Int32 = 2

    /// Its cameras that stand removed (``RemovedCameras``).
    static let removedCameras = "alert_removed_cameras"

    public init() {}

    /// The run's newest event per alert: `u(id, data)`.
    static func latest(_ rows: String) -> String {
        """
        (SELECT DISTINCT ON (e.data->>'id') e.data->>'id' AS id, e.data
         FROM \(rows) AS e(data, pos) ORDER BY e.data->>'id', e.pos DESC) AS u
        """
    }

    /// The alerts of the run moved to `status`, at the time their event gives (`<status>_at`).
    static func moved(to status: String, _ rows: String) -> String {
        """
        UPDATE alerts AS t
        SET status = '\(status)', \(status)_at = (u.data->>'\(status)_at')::timestamptz,
            updated_at = (u.data->>'\(status)_at')::timestamptz
        FROM \(latest(rows)) WHERE t.id = u.id
        """
    }

    public func apply(_ segments: [EventRun.Segment], on connection: PostgresConnection, logger: Logger) async throws {
        try await applyRuns(segments, on: connection, logger: logger) { run in
            switch run.type {
            case AlertTriggered.type:
                return [
                    run.query { rows in
                        """
                        INSERT INTO alerts (id, event_id, rule_id, rule_name, severity, status, channels, dedup_key,
                                            camera_id, metadata, created_at, updated_at, hidden)
                        SELECT e.data->>'id', (e.data->>'event_id')::bigint, e.data->>'rule_id', e.data->>'rule_name',
                               e.data->>'severity', 'pending', e.data->'channels', e.data->>'dedup_key',
                               e.data->>'camera_id',
                               jsonb_build_object(
                                   'rule_name', e.data->'rule_name', 'camera_id', e.data->'camera_id',
                                   'risk_score', e.data->'risk_score', 'object_types', e.data->'object_types',
                                   'summary', e.data->'summary'),
                               (e.data->>'created_at')::timestamptz, (e.data->>'created_at')::timestamptz,
                               \(RemovedCameras.isRemoved("e.data->>'camera_id'", in: Self.removedCameras))
                        FROM \(rows) AS e(data, pos)
                        ON CONFLICT (id) DO NOTHING
                        """
                    }
                ]
            case AlertDelivered.type:
                return [
                    run.query { rows in
                        """
                        UPDATE alerts AS t
                        SET status = CASE WHEN t.status = 'pending' THEN 'delivered' ELSE t.status END,
                            delivered_at = coalesce(t.delivered_at, (u.data->>'delivered_at')::timestamptz),
                            updated_at = greatest(t.updated_at, (u.data->>'delivered_at')::timestamptz)
                        FROM \(Self.latest(rows)) WHERE t.id = u.id
                        """
                    }
                ]
            case AlertAcknowledged.type:
                return [run.query { Self.moved(to: "acknowledged", $0) }]
            case AlertDismissed.type:
                return [run.query { Self.moved(to: "dismissed", $0) }]
            case CameraRemoved.type:
                return [CameraTotals.hideRows(run, in: "alerts"), RemovedCameras.apply(run, in: Self.removedCameras)]
            case CameraRegistered.type:
                return [RemovedCameras.apply(run, in: Self.removedCameras)]
            default:
                return []
            }
        }
    }
}
