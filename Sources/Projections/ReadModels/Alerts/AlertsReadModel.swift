import Foundation
import PostgresNIO

/// How `/api/alerts` reads the `alerts` read model (``AlertsProjection``).
public struct AlertsReadModel: Sendable {
    let database: ReadDatabase

    public init(database: ReadDatabase) { self.database = database }

    static let list = ListSpec(table: "alerts", timeColumn: "created_at", idIsInteger: false, visible: "NOT t.hidden")

    public struct Filter: Sendable {
        public var status: String?
        public var severity: String?
        public var ruleId: String?
        public var cameraId: String?
        public var eventId: Int64?
        public var since: Date?
        public var until: Date?

        public init(
            status: String? = nil, severity: String? = nil, ruleId: String? = nil, cameraId: String? = nil,
            eventId: Int64? = nil, since: Date? = nil, until: Date? = nil
        ) {
            self.status = status
            self.severity = severity
            self.ruleId = ruleId
            self.cameraId = cameraId
            self.eventId = eventId
            self.since = since
            self.until = until
        }
    }

    /// A page of the alerts, newest first.
    public func list(_ filter: Filter, page: PageBounds) async throws -> ListPage {
        var sql = SQLBuilder()
        if let status = filter.status { sql.condition("t.status = \(sql.bind(status))") }
        if let severity = filter.severity { sql.condition("t.severity = \(sql.bind(severity))") }
        if let rule = filter.ruleId { sql.condition("t.rule_id = \(sql.bind(rule))") }
        if let camera = filter.cameraId { sql.condition("t.camera_id = \(sql.bind(camera))") }
        if let event = filter.eventId { sql.condition("t.event_id = \(sql.bind(event))") }
        if let since = filter.since { sql.condition("t.created_at >= \(sql.bind(since))") }
        if let until = filter.until { sql.condition("t.created_at <= \(sql.bind(until))") }
        return try await Self.list.page(item: Self.item, filters: sql, bounds: page, in: database)
    }

    /// The alert (JSON); nil when there is none with that id, or its camera was removed.
    public func item(_ id: String) async throws -> String? {
        try await database.json { sql in
            "SELECT \(Self.item) FROM alerts t WHERE t.id = \(sql.bind(id)) AND NOT t.hidden"
        }
    }

    /// Whether the alert is hidden (its camera was removed); false when the read model doesn't
    /// hold it (yet).
    public func isHidden(_ id: String) async throws -> Bool {
        try await database.json { sql in
            "SELECT 'true' FROM alerts t WHERE t.id = \(sql.bind(id)) AND t.hidden"
        } != nil
    }

    /// The item JSON of the row `t` (CONTRACT: Alerts).
    static let item = """
        json_build_object(
            'id', t.id, 'event_id', t.event_id, 'rule_id', t.rule_id, 'rule_name', t.rule_name,
            'severity', t.severity, 'status', t.status, 'channels', t.channels, 'dedup_key', t.dedup_key,
            'camera_id', t.camera_id, 'metadata', t.metadata, 'created_at', vigil_ts(t.created_at),
            'updated_at', vigil_ts(t.updated_at), 'delivered_at', vigil_ts(t.delivered_at),
            'acknowledged_at', vigil_ts(t.acknowledged_at), 'dismissed_at', vigil_ts(t.dismissed_at))::text
        """
}
