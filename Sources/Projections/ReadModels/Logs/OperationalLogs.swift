import Domain
import Foundation
import PostgresNIO

/// One operational log record (`operational_logs`, `schemas/store/0009_operational_logs.sql`):
/// a warning or error of the server, or what a browser sent.
public struct LogRecord: Sendable, Equatable {
    public enum Level: String, Sendable, CaseIterable {
        case debug = "DEBUG", info = "INFO", warning = "WARNING", error = "ERROR", critical = "CRITICAL"
    }

    public enum Source: String, Sendable, CaseIterable {
        case backend, frontend
    }

    public var loggedAt: Date
    public var level: Level
    public var component: String
    public var message: String
    public var cameraId: String?
    public var requestId: String?
    public var durationMs: Double?
    /// A JSON object, as text.
    public var extra: String
    public var source: Source
    public var url: String?
    public var userAgent: String?

    public init(
        loggedAt: Date, level: Level, component: String, message: String, cameraId: String? = nil,
        requestId: String? = nil, durationMs: Double? = nil, extra: String = "{}", source: Source,
        url: String? = nil, userAgent: String? = nil
    ) {
        self.loggedAt = loggedAt
        self.level = level
        self.component = component
        self.message = message
        self.cameraId = cameraId
        self.requestId = requestId
        self.durationMs = durationMs
        self.extra = extra
        self.source = source
        self.url = url
        self.userAgent = userAgent
    }
}

/// Which records a list or the stats show: the seeds' filters.
public struct LogFilterParameters: Sendable {
    public var level: LogRecord.Level?
    public var component: String?
    public var cameraId: String?
    public var source: LogRecord.Source?
    /// In the message, case-insensitive.
    public var search: String?
    public var start: Date?
    public var end: Date?

    public init(
        level: LogRecord.Level? = nil, component: String? = nil, cameraId: String? = nil,
        source: LogRecord.Source? = nil, search: String? = nil, start: Date? = nil, end: Date? = nil
    ) {
        self.level = level
        self.component = component
        self.cameraId = cameraId
        self.source = source
        self.search = search
        self.start = start
        self.end = end
    }
}

/// `/api/logs` over `operational_logs`: pages, one record, the day's stats; and the writes of
/// the server's recorder and of `POST /api/logs/frontend`. Beside the read models (the read
/// side's seam): controllers hold this, never a client.
public struct OperationalLogs: Sendable {
    let database: ReadDatabase

    public init(database: ReadDatabase) { self.database = database }

    static let list = ListSpec(table: "operational_logs", timeColumn: "logged_at", idIsInteger: true, visible: "true")

    /// A page, newest first.
    public func list(_ filter: LogFilterParameters, page: PageBounds) async throws -> ListPage {
        var sql = SQLBuilder()
        Self.filters(filter, &sql)
        return try await Self.list.page(item: Self.item, filters: sql, bounds: page, in: database)
    }

    /// The record (JSON); nil when there is none with that id.
    public func item(_ id: Int64) async throws -> String? {
        try await database.json { sql in
            "SELECT \(Self.item) FROM operational_logs t WHERE t.id = \(sql.bind(id))"
        }
    }

    /// The seed's `{total_today, errors_today, warnings_today, by_component, by_level,
    /// top_component}` of the current UTC day (the filters narrow it further).
    public func stats(_ filter: LogFilterParameters) async throws -> String {
        try await database.json { sql in
            Self.filters(filter, &sql)
            return """
                WITH s AS (SELECT * FROM operational_logs t WHERE \(sql.conjunction)
                           AND t.logged_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
                SELECT json_build_object(
                    'total_today', (SELECT count(*) FROM s),
                    'errors_today', (SELECT count(*) FROM s WHERE level IN ('ERROR', 'CRITICAL')),
                    'warnings_today', (SELECT count(*) FROM s WHERE level = 'WARNING'),
                    'by_component', (SELECT coalesce(json_object_agg(component, n ORDER BY component), '{}')
                                     FROM (SELECT component, count(*) AS n FROM s GROUP BY 1) c),
                    'by_level', (SELECT coalesce(json_object_agg(level, n ORDER BY level), '{}')
                                 FROM (SELECT level, count(*) AS n FROM s GROUP BY 1) l),
                    'top_component', (SELECT component FROM s GROUP BY 1 ORDER BY count(*) DESC, component LIMIT 1)
                )::text
                """
        } ?? "{}"
    }

    /// Stores `records` in one statement (as one JSON array: a column of nulls can't be bound as
    /// an array); returns how many.
    @discardableResult
    public func insert(_ records: [LogRecord]) async throws -> Int {
        guard !records.isEmpty else { return 0 }
        let rows = records.map(Row.init)
        let json = String(decoding: try JSONEncoder().encode(rows), as: UTF8.self)
        var sql = SQLBuilder()
        let statement = """
            WITH stored AS (
                INSERT INTO operational_logs (logged_at, level, component, message, camera_id, request_id,
                                              duration_ms, extra, source, url, user_agent)
                SELECT r.logged_at, r.level, r.component, r.message, r.camera_id, r.request_id, r.duration_ms,
                       r.extra::jsonb, r.source, r.url, r.user_agent
                FROM jsonb_to_recordset(\(sql.bind(json))::jsonb)
                    AS r(logged_at timestamptz, level text, component text, message text, camera_id text,
                         request_id text, duration_ms float8, extra text, source text, url text, user_agent text)
                RETURNING 1)
            SELECT count(*) FROM stored
            """
        var count = 0
        for try await n in try await database.rows(sql, statement).decode(Int64.self) { count = Int(n) }
        return count
    }

    /// A record as a row of the insert's JSON.
    struct Row: Encodable {
        var loggedAt: String
        var level: String
        var component: String
        var message: String
        var cameraId: String?
        var requestId: String?
        var durationMs: Double?
        var extra: String
        var source: String
        var url: String?
        var userAgent: String?

        init(_ record: LogRecord) {
            loggedAt = EventCoding.timestamp(record.loggedAt, .microseconds)
            level = record.level.rawValue
            component = record.component
            message = record.message
            cameraId = record.cameraId
            requestId = record.requestId
            durationMs = record.durationMs
            extra = record.extra
            source = record.source.rawValue
            url = record.url
            userAgent = record.userAgent
        }

        enum CodingKeys: String, CodingKey {
            case level, component, message, extra, source, url
            case loggedAt = "logged_at"
            case cameraId = "camera_id"
            case requestId = "request_id"
            case durationMs = "duration_ms"
            case userAgent = "user_agent"
        }
    }

    /// Deletes the records logged before `cutoff`; returns how many.
    @discardableResult
    public func delete(before cutoff: Date) async throws -> Int {
        var sql = SQLBuilder()
        let statement = """
            WITH gone AS (DELETE FROM operational_logs WHERE logged_at < \(sql.bind(cutoff)) RETURNING 1)
            SELECT count(*) FROM gone
            """
        var count = 0
        for try await n in try await database.rows(sql, statement).decode(Int64.self) { count = Int(n) }
        return count
    }

    static func filters(_ filter: LogFilterParameters, _ sql: inout SQLBuilder) {
        if let level = filter.level { sql.condition("t.level = \(sql.bind(level.rawValue))") }
        if let component = filter.component { sql.condition("t.component = \(sql.bind(component))") }
        if let camera = filter.cameraId { sql.condition("t.camera_id = \(sql.bind(camera))") }
        if let source = filter.source { sql.condition("t.source = \(sql.bind(source.rawValue))") }
        if let search = filter.search {
            // A literal substring: the pattern's own wildcards are escaped.
            let pattern =
                "%"
                + search.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
                .replacingOccurrences(of: "_", with: "\\_") + "%"
            sql.condition("t.message ILIKE \(sql.bind(pattern))")
        }
        if let start = filter.start { sql.condition("t.logged_at >= \(sql.bind(start))") }
        if let end = filter.end { sql.condition("t.logged_at <= \(sql.bind(end))") }
    }

    /// The item JSON of the row `t` (the seed's log fields, and where a browser's came from).
    static let item = """
        json_build_object(
            'id', t.id, 'timestamp', vigil_ts(t.logged_at), 'level', t.level, 'component', t.component,
            'message', t.message, 'camera_id', t.camera_id, 'request_id', t.request_id,
            'duration_ms', t.duration_ms, 'extra', t.extra, 'source', t.source, 'url', t.url,
            'user_agent', t.user_agent)::text
        """
}
