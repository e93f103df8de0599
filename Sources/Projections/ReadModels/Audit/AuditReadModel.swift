import Domain
import EventStore
import Foundation
import PostgresNIO

/// Which audit entries a list or the stats show: the seeds' filters.
public struct AuditFilter: Sendable {
    public var action: String?
    public var resourceType: String?
    public var resourceId: String?
    public var actor: String?
    public var status: String?
    public var start: Date?
    public var end: Date?

    public init(
        action: String? = nil, resourceType: String? = nil, resourceId: String? = nil, actor: String? = nil,
        status: String? = nil, start: Date? = nil, end: Date? = nil
    ) {
        self.action = action
        self.resourceType = resourceType
        self.resourceId = resourceId
        self.actor = actor
        self.status = status
        self.start = start
        self.end = end
    }
}

/// How `/api/audit` reads the `audit` read model (written by ``AuditProjection``).
public struct AuditReadModel: Sendable {
    let database: ReadDatabase

    public init(database: ReadDatabase) { self.database = database }

    static let list = ListSpec(table: "audit_log", timeColumn: "logged_at", idIsInteger: true, visible: "true")

    /// A page of the trail, newest first.
    public func list(_ filter: AuditFilter, page: PageBounds) async throws -> ListPage {
        var sql = SQLBuilder()
        Self.filters(filter, &sql)
        return try await Self.list.page(item: Self.item, filters: sql, bounds: page, in: database)
    }

    /// The entry (JSON); nil when there is none with that id.
    public func item(_ id: Int64) async throws -> String? {
        try await database.json { sql in "SELECT \(Self.item) FROM audit_log t WHERE t.id = \(sql.bind(id))" }
    }

    /// `{total_logs, logs_today, by_action, by_resource_type, by_status, recent_actors}` of the
    /// entries `filter` selects; today is the current UTC day, `recent_actors` the ten actors
    /// seen last, the latest first.
    public func stats(_ filter: AuditFilter) async throws -> String {
        try await database.json { sql in
            Self.filters(filter, &sql)
            let scope = "SELECT * FROM audit_log t WHERE \(sql.conjunction)"
            return """
                WITH s AS (\(scope))
                SELECT json_build_object(
                    'total_logs', (SELECT count(*) FROM s),
                    'logs_today', (SELECT count(*) FROM s
                                   WHERE logged_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'),
                    'by_action', (SELECT coalesce(json_object_agg(action, n ORDER BY action), '{}')
                                  FROM (SELECT action, count(*) AS n FROM s GROUP BY 1) a),
                    'by_resource_type', (SELECT coalesce(json_object_agg(resource_type, n ORDER BY resource_type), '{}')
                                         FROM (SELECT resource_type, count(*) AS n FROM s GROUP BY 1) r),
                    'by_status', (SELECT coalesce(json_object_agg(status, n ORDER BY status), '{}')
                                  FROM (SELECT status, count(*) AS n FROM s GROUP BY 1) st),
                    'recent_actors', (SELECT coalesce(json_agg(actor ORDER BY last DESC, actor), '[]')
                                      FROM (SELECT actor, max(logged_at) AS last FROM s GROUP BY 1
                                            ORDER BY last DESC, actor LIMIT 10) ra)
                )::text
                """
        } ?? "{}"
    }

    static func filters(_ filter: AuditFilter, _ sql: inout SQLBuilder) {
        if let action = filter.action { sql.condition("t.action = \(sql.bind(action))") }
        if let type = filter.resourceType { sql.condition("t.resource_type = \(sql.bind(type))") }
        if let id = filter.resourceId { sql.condition("t.resource_id = \(sql.bind(id))") }
        if let actor = filter.actor { sql.condition("t.actor = \(sql.bind(actor))") }
        if let status = filter.status { sql.condition("t.status = \(sql.bind(status))") }
        if let start = filter.start { sql.condition("t.logged_at >= \(sql.bind(start))") }
        if let end = filter.end { sql.condition("t.logged_at <= \(sql.bind(end))") }
    }

    /// The item JSON (CONTRACT: Audit) of the row `t`.
    static let item = """
        json_build_object(
            'id', t.id, 'timestamp', vigil_ts(t.logged_at), 'action', t.action, 'resource_type', t.resource_type,
            'resource_id', t.resource_id, 'actor', t.actor, 'ip_address', t.ip_address, 'user_agent', t.user_agent,
            'details', t.details, 'status', t.status)::text
        """
}
