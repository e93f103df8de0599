import Domain
import Foundation
import PostgresNIO

/// How `/api/notification-preferences` (and the webhook deliverer) read the notifications read
/// model (``NotificationsProjection``).
public struct NotificationsReadModel: Sendable {
    let database: ReadDatabase

    public init(database: ReadDatabase) { self.database = database }

    /// The global preferences (the defaults until someone changes them).
    public func preferences() async throws -> NotificationPreferences {
        guard let json = try await database.json({ _ in "SELECT preferences::text FROM notification_preferences" })
        else { return .defaults }
        return try EventCoding.decoder.decode(NotificationPreferences.self, from: Data(json.utf8))
    }

    static let cameras = ListSpec(
        table: "camera_notification_settings", timeColumn: "created_at", idIsInteger: false, visible: "true")

    /// The cameras whose setting was ever changed, newest first.
    public func cameraSettings(page: PageBounds) async throws -> ListPage {
        try await Self.cameras.page(item: Self.cameraItem, filters: SQLBuilder(), bounds: page, in: database)
    }

    /// A camera's setting (the defaults for one never changed).
    public func cameraSetting(_ camera: String) async throws -> CameraNotificationSetting {
        var sql = SQLBuilder()
        let statement =
            "SELECT enabled, risk_threshold FROM camera_notification_settings WHERE id = \(sql.bind(camera))"
        for try await (enabled, threshold) in try await database.rows(sql, statement).decode((Bool, Int32?).self) {
            return CameraNotificationSetting(enabled: enabled, riskThreshold: threshold.map(Int.init))
        }
        return .defaults
    }

    static let cameraItem = """
        json_build_object('id', t.id, 'camera_id', t.id, 'enabled', t.enabled,
            'risk_threshold', t.risk_threshold, 'created_at', vigil_ts(t.created_at),
            'updated_at', vigil_ts(t.updated_at))::text
        """

    static let quiet = ListSpec(table: "quiet_hours", timeColumn: "created_at", idIsInteger: false, visible: "true")

    public func quietHours(page: PageBounds) async throws -> ListPage {
        try await Self.quiet.page(item: Self.quietItem, filters: SQLBuilder(), bounds: page, in: database)
    }

    /// One period (JSON); nil when there is none with that id.
    public func quietHoursItem(_ id: String) async throws -> String? {
        try await database.json { sql in "SELECT \(Self.quietItem) FROM quiet_hours t WHERE t.id = \(sql.bind(id))" }
    }

    /// Every period, for the deliverer.
    public func allQuietHours() async throws -> [QuietHours] {
        var periods: [QuietHours] = []
        for try await json in try await database.rows(PostgresQuery(unsafeSQL: "SELECT period::text FROM quiet_hours"))
            .decode(String.self)
        {
            periods.append(try EventCoding.decoder.decode(QuietHours.self, from: Data(json.utf8)))
        }
        return periods
    }

    static let quietItem = """
        (t.period || jsonb_build_object('id', t.id, 'created_at', vigil_ts(t.created_at),
            'updated_at', vigil_ts(t.updated_at)))::text
        """
}
