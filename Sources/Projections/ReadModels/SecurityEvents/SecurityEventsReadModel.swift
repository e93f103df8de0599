import Domain
import EventStore
import Foundation
import PostgresNIO

/// Which security events a list, search, stats or export shows: the seeds' filters.
public struct SecurityEventFilter: Sendable {
    public var camera: String?
    public var level: RiskLevel?
    public var start: Date?
    public var end: Date?
    public var reviewed: Bool?
    public var objectType: String?

    public init(
        camera: String? = nil, level: RiskLevel? = nil, start: Date? = nil, end: Date? = nil, reviewed: Bool? = nil,
        objectType: String? = nil
    ) {
        self.camera = camera
        self.level = level
        self.start = start
        self.end = end
        self.reviewed = reviewed
        self.objectType = objectType
    }

    /// Whether the only filters are the camera and the level (then the score histogram counts).
    var isCameraAndLevelOnly: Bool { start == nil && end == nil && reviewed == nil && objectType == nil }
}

/// A row of the CSV export.
public struct SecurityEventExportRow: Sendable {
    public var id: Int64
    public var cameraName: String
    public var startedAt: String
    public var endedAt: String?
    public var riskScore: String?
    public var riskLevel: String?
    public var summary: String?
    public var detectionCount: Int64
    public var reviewed: Bool
}

/// Search results: the matching count and a page of items (JSON), best match first.
public struct SearchResults: Sendable {
    public var total: Int64
    public var items: [String]
}

/// How `/api/events` reads the `security_events` read model (written by
/// ``SecurityEventsProjection``): its SQL, its rendering (JSON built by PostgreSQL) and its list.
///
/// Every level is computed here from the stored score under the thresholds the caller passes
/// (those in force), with the SQL ``SeverityThresholds`` generates.
public struct SecurityEventsReadModel: Sendable {
    let database: ReadDatabase

    public init(database: ReadDatabase) { self.database = database }

    static let list = ListSpec(
        table: "security_events", timeColumn: "started_at", idIsInteger: true, visible: "NOT t.hidden")

    /// A page of the list, newest first.
    public func list(
        _ filter: SecurityEventFilter, thresholds: SeverityThresholds, page: PageBounds
    ) async throws -> ListPage {
        let (sql, statement) = Self.listQuery(filter, thresholds: thresholds, page: page)
        return try await Self.list.run(sql, statement, bounds: page, in: database)
    }

    /// The statement ``list(_:thresholds:page:)`` runs, its values written in: what a benchmark
    /// gives `pgbench` to measure the database alone on the route's work.
    public static func listSQL(
        _ filter: SecurityEventFilter, thresholds: SeverityThresholds, page: PageBounds
    )
        -> String?
    {
        let (sql, statement) = listQuery(filter, thresholds: thresholds, page: page)
        return sql.inlined(statement)
    }

    static func listQuery(
        _ filter: SecurityEventFilter, thresholds: SeverityThresholds, page: PageBounds
    ) -> (SQLBuilder, String) {
        var sql = SQLBuilder()
        filters(filter, &sql, thresholds)
        let count =
            filter.isCameraAndLevelOnly
            ? histogramCount(camera: filter.camera, level: filter.level, thresholds: thresholds, &sql) : nil
        return list.query(item: item(&sql, thresholds), filters: sql, countSQL: count, bounds: page)
    }

    /// The event (JSON) unless it doesn't exist or is hidden. `reviewed` and `notes` replace
    /// the row's values (a review just written, whose row the projection may not have updated
    /// yet).
    public func item(
        _ id: Int64, thresholds: SeverityThresholds, reviewed: Bool? = nil, notes: String?? = nil
    ) async throws -> String? {
        try await database.json { sql in
            "SELECT \(Self.item(&sql, thresholds, reviewed: reviewed, notes: notes)) "
                + "FROM security_events t "
                + "WHERE t.id = \(sql.bind(id)) AND NOT t.hidden"
        }
    }

    /// The item JSON of a security event folded from its stream (a read back in time), rendered
    /// by the same SQL as the table's rows: the fold, encoded, is a row of `security_events`.
    public func item(of event: SecurityEvent, thresholds: SeverityThresholds) async throws -> String? {
        let row = String(decoding: try EventCoding.encoder.encode(event), as: UTF8.self)
        return try await database.json { sql in
            "SELECT \(Self.item(&sql, thresholds)) "
                + "FROM jsonb_populate_record(NULL::security_events, \(sql.bind(row))::jsonb) t"
        }
    }

    /// Whether the event exists and is not hidden.
    public func isVisible(_ id: Int64) async throws -> Bool {
        let rows = try await database.rows("SELECT 1 FROM security_events WHERE id = \(id) AND NOT hidden")
        for try await _ in rows { return true }
        return false
    }

    /// A page of the event's detections, rendered like `/api/detections`.
    public func detections(of id: Int64, page: PageBounds) async throws -> ListPage {
        var sql = SQLBuilder()
        sql.condition("t.id = ANY ((SELECT detection_ids FROM security_events WHERE id = \(sql.bind(id)))::bigint[])")
        return try await DetectionsReadModel.list.page(
            item: DetectionsReadModel.item, filters: sql, bounds: page, in: database)
    }

    /// `count` of a list filtered by the camera and the level at most, from the score histogram
    /// (`security_event_scores`: at most 102 rows a camera), in the page's statement.
    static func histogramCount(
        camera: String?, level: RiskLevel?, thresholds: SeverityThresholds, _ sql: inout SQLBuilder
    ) -> String {
        var conditions = ["true"]
        if let camera { conditions.append("h.camera_id = \(sql.bind(camera))") }
        if let level { conditions += ["h.score >= 0", thresholds.conditionSQL(score: "h.score", level: level)] }
        return
            "SELECT coalesce(sum(h.n), 0) FROM security_event_scores h WHERE \(conditions.joined(separator: " AND "))"
    }

    /// `{total_events, events_by_risk_level: {critical, high, medium, low}, events_by_camera}`.
    /// Over all history it reads the score histogram (at most 102 rows a camera); a time range
    /// counts the rows in it.
    public func stats(
        camera: String?, start: Date?, end: Date?, thresholds: SeverityThresholds
    ) async throws -> String {
        let json = try await database.json { sql in
            guard start != nil || end != nil else {
                return Self.statsJSON(
                    grouped: """
                        SELECT t.camera_id, CASE WHEN t.score >= 0 THEN t.score END AS risk_score, t.n
                        FROM security_event_scores t
                        \(camera.map { "WHERE t.camera_id = \(sql.bind($0))" } ?? "")
                        """, thresholds: thresholds)
            }
            Self.scope(camera: camera, start: start, end: end, &sql)
            // Counted per camera and score first (an index-only scan, at most 102 groups per
            // camera), then per level: the level is computed for the groups, not for every row.
            return Self.statsJSON(
                grouped: """
                    SELECT t.camera_id, t.risk_score, count(*) AS n FROM security_events t
                    WHERE NOT t.hidden AND \(sql.conjunction)
                    GROUP BY 1, 2
                    """, thresholds: thresholds)
        }
        return json ?? "{}"
    }

    /// The stats' JSON from `grouped`: SQL giving events per `camera_id` and `risk_score` (null:
    /// not analyzed yet) as `n`.
    static func statsJSON(grouped: String, thresholds: SeverityThresholds) -> String {
        let level = thresholds.levelSQL(score: "t.risk_score")
        return """
            WITH grouped AS (\(grouped)),
            matching AS (SELECT t.camera_id, \(level) AS level, t.n FROM grouped t)
            SELECT json_build_object(
                'total_events', (SELECT coalesce(sum(n), 0) FROM matching),
                'events_by_risk_level', (
                    SELECT json_build_object(
                        'critical', coalesce(sum(n) FILTER (WHERE level = 'critical'), 0),
                        'high', coalesce(sum(n) FILTER (WHERE level = 'high'), 0),
                        'medium', coalesce(sum(n) FILTER (WHERE level = 'medium'), 0),
                        'low', coalesce(sum(n) FILTER (WHERE level = 'low'), 0))
                    FROM matching),
                'events_by_camera', (
                    SELECT coalesce(json_agg(json_build_object(
                               'camera_id', x.camera_id, 'camera_name', x.camera_name, 'event_count', x.n)
                           ORDER BY x.n DESC, x.camera_id), '[]'::json)
                    FROM (
                        SELECT m.camera_id, coalesce(c.name, m.camera_id) AS camera_name, sum(m.n) AS n
                        FROM matching m LEFT JOIN cameras c ON c.id = m.camera_id
                        GROUP BY 1, 2
                    ) x)
            )::text
            """
    }

    /// Full-text search (web-search syntax: words, "phrases", `or`, `-not`) over summary,
    /// reasoning and object types, best match first; items carry `camera_name` and
    /// `relevance_score`.
    public func search(
        _ text: String, filter: SecurityEventFilter, thresholds: SeverityThresholds, limit: Int, offset: Int
    ) async throws -> SearchResults {
        var sql = SQLBuilder()
        Self.filters(filter, &sql, thresholds)
        let tsquery = "websearch_to_tsquery('english', \(sql.bind(text)))"
        sql.condition("t.document @@ \(tsquery)")
        let rank = "ts_rank(t.document, \(tsquery))"
        let item = Self.item(
            &sql, thresholds, extra: ", 'camera_name', coalesce(cam.name, t.camera_id), 'relevance_score', \(rank)")
        let statement = """
            SELECT c.total, p.item
            FROM (SELECT count(*) FROM security_events t WHERE NOT t.hidden AND \(sql.conjunction)) AS c(total)
            LEFT JOIN LATERAL (
                SELECT \(item) AS item, \(rank) AS rank, t.started_at, t.id
                FROM security_events t LEFT JOIN cameras cam ON cam.id = t.camera_id
                WHERE NOT t.hidden AND \(sql.conjunction)
                ORDER BY rank DESC, t.started_at DESC, t.id DESC
                LIMIT \(sql.bind(limit)) OFFSET \(sql.bind(offset))
            ) p ON true
            ORDER BY p.rank DESC, p.started_at DESC, p.id DESC
            """
        var results = SearchResults(total: 0, items: [])
        for try await (count, item) in try await database.rows(sql, statement).decode((Int64, String?).self) {
            results.total = count
            if let item { results.items.append(item) }
        }
        return results
    }

    /// Up to `limit` rows of the export after `after` (the last row of the previous batch's
    /// `startedAt` and `id`), newest first.
    public func export(
        _ filter: SecurityEventFilter, thresholds: SeverityThresholds, after: (time: String, id: Int64)?,
        limit: Int = 1000
    ) async throws -> [SecurityEventExportRow] {
        var sql = SQLBuilder()
        Self.filters(filter, &sql, thresholds)
        let level = thresholds.levelSQL(score: "t.risk_score")
        var keyset = ""
        if let after {
            keyset = " AND (t.started_at, t.id) < (\(sql.bind(after.time))::timestamptz, \(sql.bind(after.id)))"
        }
        let statement = """
            SELECT t.id, coalesce(c.name, t.camera_id), vigil_ts(t.started_at), vigil_ts(t.ended_at),
                   t.risk_score::text, \(level), t.summary, cardinality(t.detection_ids)::bigint, t.reviewed
            FROM security_events t LEFT JOIN cameras c ON c.id = t.camera_id
            WHERE NOT t.hidden AND \(sql.conjunction)\(keyset)
            ORDER BY t.started_at DESC, t.id DESC LIMIT \(sql.bind(limit))
            """
        var rows: [SecurityEventExportRow] = []
        for try await row in try await database.rows(sql, statement).decode(
            (Int64, String, String, String?, String?, String?, String?, Int64, Bool).self)
        {
            rows.append(
                SecurityEventExportRow(
                    id: row.0, cameraName: row.1, startedAt: row.2, endedAt: row.3, riskScore: row.4, riskLevel: row.5,
                    summary: row.6, detectionCount: row.7, reviewed: row.8))
        }
        return rows
    }

    // MARK: SQL

    /// The item JSON (CONTRACT: security events) of the row `t`, with `extra` key/value pairs
    /// appended; `reviewed` and `notes` replace the row's values.
    static func item(
        _ sql: inout SQLBuilder, _ thresholds: SeverityThresholds, extra: String = "",
        reviewed: Bool? = nil, notes: String?? = nil
    ) -> String {
        let reviewed = reviewed.map { "\(sql.bind($0))::boolean" } ?? "t.reviewed"
        let notes = notes.map { given in given.map { "\(sql.bind($0))::text" } ?? "NULL::text" } ?? "t.notes"
        return """
            json_build_object(
                'id', t.id, 'camera_id', t.camera_id,
                'started_at', vigil_ts(t.started_at), 'ended_at', vigil_ts(t.ended_at),
                'risk_score', t.risk_score, 'risk_level', \(thresholds.levelSQL(score: "t.risk_score")),
                'summary', t.summary, 'reasoning', t.reasoning, 'reviewed', \(reviewed), 'notes', \(notes),
                'detection_count', cardinality(t.detection_ids), 'detection_ids', t.detection_ids,
                'object_types', t.object_types,
                'thumbnail_url', CASE WHEN cardinality(t.detection_ids) > 0
                                      THEN '/api/detections/' || t.detection_ids[1] || '/image' END,
                'batch_id', t.batch_id, 'is_fast_path', t.is_fast_path\(extra))::text
            """
    }

    /// The filters as conditions on the row `t`.
    static func filters(_ filter: SecurityEventFilter, _ sql: inout SQLBuilder, _ thresholds: SeverityThresholds) {
        scope(camera: filter.camera, start: filter.start, end: filter.end, &sql)
        if let level = filter.level { sql.condition(thresholds.conditionSQL(score: "t.risk_score", level: level)) }
        if let reviewed = filter.reviewed { sql.condition("t.reviewed = \(sql.bind(reviewed))") }
        if let objectType = filter.objectType {
            sql.condition("t.object_types @> ARRAY[\(sql.bind(objectType))::text]")
        }
    }

    /// The camera and the start-time range: what the list and the stats both narrow by.
    static func scope(camera: String?, start: Date?, end: Date?, _ sql: inout SQLBuilder) {
        if let camera { sql.condition("t.camera_id = \(sql.bind(camera))") }
        if let start { sql.condition("t.started_at >= \(sql.bind(start))") }
        if let end { sql.condition("t.started_at <= \(sql.bind(end))") }
    }
}
