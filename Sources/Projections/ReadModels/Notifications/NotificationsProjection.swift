import Domain
import EventStore
import Logging
import PostgresNIO

/// `notification_preferences`, `camera_notification_settings`, `quiet_hours`: what
/// `/api/notification-preferences` shows and what the webhook deliverer obeys. Every event is a
/// barrier (rare, and each thing's changes must apply in order). A camera's removal takes its
/// setting with it: the same name registered again starts from the global preferences.
public struct NotificationsProjection: RunBasedProjection {
    public let name = "notifications"
    static let types = [
        NotificationPreferencesChanged.type, CameraNotificationSettingChanged.type, QuietHoursSet.type,
        QuietHoursDeleted.type, CameraRemoved.type,
    ]
    public let filter = LogFilter(types: Self.types)
    public let barriers = Set(Self.types)
    /// 2: a removed camera's setting leaves (it stayed listed, and applied to a camera registered
    /// again under the name).
    public let version: Int32 = 2

    public init() {}

    public func apply(_ segments: [EventRun.Segment], on connection: PostgresConnection, logger: Logger) async throws {
        try await applyRuns(segments, on: connection, logger: logger) { run in
            switch run.type {
            case NotificationPreferencesChanged.type:
                return [
                    run.query { rows in
                        """
                        INSERT INTO notification_preferences (preferences, updated_at)
                        SELECT e.data->'preferences', (e.data->>'changed_at')::timestamptz
                        FROM \(rows) AS e(data, pos) ORDER BY e.pos DESC LIMIT 1
                        ON CONFLICT (only_row) DO UPDATE
                        SET preferences = excluded.preferences, updated_at = excluded.updated_at
                        """
                    }
                ]
            case CameraNotificationSettingChanged.type:
                return [
                    run.query { rows in
                        """
                        INSERT INTO camera_notification_settings AS t
                            (id, enabled, risk_threshold, created_at, updated_at)
                        SELECT DISTINCT ON (e.data->>'camera_id') e.data->>'camera_id',
                               (e.data->'setting'->>'enabled')::boolean,
                               (e.data->'setting'->>'risk_threshold')::integer,
                               -- Made by the run's first change of the camera, however the run is cut.
                               first_value((e.data->>'changed_at')::timestamptz)
                                   OVER (PARTITION BY e.data->>'camera_id' ORDER BY e.pos),
                               (e.data->>'changed_at')::timestamptz
                        FROM \(rows) AS e(data, pos) ORDER BY e.data->>'camera_id', e.pos DESC
                        ON CONFLICT (id) DO UPDATE
                        SET enabled = excluded.enabled, risk_threshold = excluded.risk_threshold,
                            updated_at = excluded.updated_at
                        """
                    }
                ]
            case QuietHoursSet.type:
                return [
                    run.query { rows in
                        """
                        INSERT INTO quiet_hours AS t (id, period, created_at, updated_at)
                        SELECT DISTINCT ON (e.data->>'id') e.data->>'id', e.data->'period',
                               first_value((e.data->>'set_at')::timestamptz)
                                   OVER (PARTITION BY e.data->>'id' ORDER BY e.pos),
                               (e.data->>'set_at')::timestamptz
                        FROM \(rows) AS e(data, pos) ORDER BY e.data->>'id', e.pos DESC
                        ON CONFLICT (id) DO UPDATE SET period = excluded.period, updated_at = excluded.updated_at
                        """
                    }
                ]
            case QuietHoursDeleted.type:
                return [
                    run.query { rows in
                        "DELETE FROM quiet_hours WHERE id IN (SELECT e.data->>'id' FROM \(rows) AS e(data, pos))"
                    }
                ]
            case CameraRemoved.type:
                return [
                    run.query { "DELETE FROM camera_notification_settings WHERE id = \(CameraTotals.removed($0))" }
                ]
            default:
                return []
            }
        }
    }
}
