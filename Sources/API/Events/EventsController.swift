import Domain
import EventStore
import Foundation
import Hummingbird
import PostgresNIO
import Projections

/// `/api/events`: security events — list, one, its detections, review, stats, search, export.
struct EventsController<Context: RequestContext> {
    let store: EventStore
    let appender: GroupCommitAppender
    let thresholds: @Sendable () async throws -> SeverityThresholds

    var client: PostgresClient { store.client }
    var logger: Logger { store.logger }

    func addRoutes(to router: Router<Context>) {
        let events = router.group("/api/events")
        events.get(use: list)
        events.get("stats", use: stats)
        events.get("search", use: search)
        events.get("export", use: export)
        events.get("{event_id}", use: get)
        events.patch("{event_id}", use: review)
        events.get("{event_id}/detections", use: detections)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let page = try PageRequest(query)
        let thresholds = try await thresholds()
        var sql = SQLBuilder()
        let onlyCamera = try SecurityEventSQL.filters(query, &sql, thresholds)
        let count = onlyCamera ? SecurityEventSQL.list.totalsCount(camera: query.string("camera_id"), &sql) : nil
        let item = SecurityEventSQL.item(&sql, thresholds)
        return try await listPage(
            SecurityEventSQL.list, item: item, filters: sql, countSQL: count, page: page, client: client, logger: logger
        )
    }

    @Sendable func get(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.integerID("event_id")
        return try await item(id)
    }

    /// The event as the read model shows it, with a review just written (`reviewed`, `notes`)
    /// applied over it in case the projection has not caught up.
    private func item(_ id: Int64, reviewed: Bool? = nil, notes: String? = nil) async throws -> Response {
        let thresholds = try await thresholds()
        return try await itemResponse(notFound: "Event \(id) not found", client: client, logger: logger) { sql in
            "SELECT \(SecurityEventSQL.item(&sql, thresholds, reviewed: reviewed, notes: notes)) "
                + "FROM security_events t "
                + "WHERE t.id = \(sql.bind(id)) AND NOT t.hidden"
        }
    }

    /// `PATCH /api/events/{id}` `{reviewed?, notes?}`: appends `SecurityEventReviewed`, then
    /// answers with the event as the read model shows it after the write.
    @Sendable func review(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.integerID("event_id")
        var body = try await JSONBody.parse(request, context: context)
        let reviewed = body.bool("reviewed")
        let notes = body.string("notes", length: 0...10_000)
        try body.validate()
        try await requireVisible(id)
        if reviewed != nil || notes != nil {
            try await appender.appendCommand(
                SecurityEventReviewed(id: id, reviewed: reviewed, notes: notes), expected: .streamExists,
                request: request, store: store, waitFor: ["security_events"],
                conflict: APIError.notFound("Event \(id) not found"))
        }
        return try await item(id, reviewed: reviewed, notes: notes)
    }

    private func requireVisible(_ id: Int64) async throws {
        let rows = try await client.guardedQuery(
            "SELECT 1 FROM security_events WHERE id = \(id) AND NOT hidden", logger: logger)
        for try await _ in rows { return }
        throw APIError.notFound("Event \(id) not found")
    }

    @Sendable func detections(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.integerID("event_id")
        let page = try PageRequest(QueryParameters(request))
        try await requireVisible(id)
        var sql = SQLBuilder()
        sql.condition("t.id = ANY ((SELECT detection_ids FROM security_events WHERE id = \(sql.bind(id)))::bigint[])")
        return try await listPage(
            DetectionSQL.list, item: DetectionSQL.item, filters: sql, page: page, client: client, logger: logger)
    }

    /// `{total_events, events_by_risk_level: {critical, high, medium, low}, events_by_camera}`.
    @Sendable func stats(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let (start, end) = try query.dateRange()
        let thresholds = try await thresholds()
        let camera = query.string("camera_id")
        return try await itemResponse(notFound: "", client: client, logger: logger) { sql in
            SecurityEventSQL.scope(camera: camera, start: start, end: end, &sql)
            let level = SecurityEventSQL.level(&sql, thresholds)
            // Counted per camera and score first (an index-only scan, at most 102 groups per
            // camera), then per level: the level is computed for the groups, not for every row.
            return """
                WITH grouped AS (
                    SELECT t.camera_id, t.risk_score, count(*) AS n FROM security_events t
                    WHERE NOT t.hidden AND \(sql.conjunction)
                    GROUP BY 1, 2
                ),
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
    }

    /// `GET /api/events/search?q=`: PostgreSQL full-text search (web-search syntax: words,
    /// "phrases", `or`, `-not`) over summary, reasoning and object types, best match first.
    @Sendable func search(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        guard let text = query.string("q") else {
            throw ValidationError(location: ["query", "q"], message: "Field required", type: "missing")
        }
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ValidationError(
                location: ["query", "q"], message: "String should have at least 1 character", type: "string_too_short")
        }
        let limit = try query.integer("limit", default: 50, in: 1...1000)
        let offset = try query.integer("offset", default: 0, in: 0...Int(Int32.max))
        let thresholds = try await thresholds()
        var sql = SQLBuilder()
        try SecurityEventSQL.filters(query, &sql, thresholds)
        let tsquery = "websearch_to_tsquery('english', \(sql.bind(text)))"
        sql.condition("t.document @@ \(tsquery)")
        let rank = "ts_rank(t.document, \(tsquery))"
        let item = SecurityEventSQL.item(
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
        var total: Int64 = 0
        var items: [String] = []
        let rows = try await client.guardedQuery(sql.query(statement), logger: logger)
        for try await (count, item) in rows.decode((Int64, String?).self) {
            total = count
            if let item { items.append(item) }
        }
        var body = JSONWriter()
        body.object { object in
            object.array("results") { array in for item in items { array.raw(json: item) } }
            object.field("total_count", total)
            object.field("limit", limit)
            object.field("offset", offset)
        }
        return body.response()
    }

    /// `GET /api/events/export`: the filtered list as CSV, streamed in keyset batches.
    @Sendable func export(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let thresholds = try await thresholds()
        var filters = SQLBuilder()
        try SecurityEventSQL.filters(query, &filters, thresholds)
        let baseFilters = filters
        let client = self.client
        let logger = self.logger
        let stamp = Date().formatted(
            .verbatim(
                "\(year: .defaultDigits)\(month: .twoDigits)\(day: .twoDigits)_\(hour: .twoDigits(clock: .twentyFourHour, hourCycle: .zeroBased))\(minute: .twoDigits)\(second: .twoDigits)",
                timeZone: .gmt, calendar: Calendar(identifier: .gregorian)))
        var headers = HTTPFields()
        headers[.contentType] = "text/csv; charset=utf-8"
        headers[.contentDisposition] = "attachment; filename=\"events_export_\(stamp).csv\""
        let body = ResponseBody { writer in
            var buffer = ByteBuffer()
            CSV.row(
                [
                    "event_id", "camera_name", "started_at", "ended_at", "risk_score", "risk_level", "summary",
                    "detection_count", "reviewed",
                ], to: &buffer)
            try await writer.write(buffer)
            var after: (time: String, id: Int64)?
            while true {
                var sql = baseFilters
                let level = SecurityEventSQL.level(&sql, thresholds)
                var keyset = ""
                if let after {
                    keyset = " AND (t.started_at, t.id) < (\(sql.bind(after.time))::timestamptz, \(sql.bind(after.id)))"
                }
                let rows = try await client.guardedQuery(
                    sql.query(
                        """
                        SELECT t.id, coalesce(c.name, t.camera_id), vigil_ts(t.started_at), vigil_ts(t.ended_at),
                               t.risk_score::text, \(level), t.summary, cardinality(t.detection_ids)::bigint, t.reviewed
                        FROM security_events t LEFT JOIN cameras c ON c.id = t.camera_id
                        WHERE NOT t.hidden AND \(sql.conjunction)\(keyset)
                        ORDER BY t.started_at DESC, t.id DESC LIMIT 1000
                        """), logger: logger)
                buffer.clear()
                var last: (time: String, id: Int64)?
                for try await row in rows.decode(
                    (Int64, String, String, String?, String?, String?, String?, Int64, Bool).self)
                {
                    CSV.row(
                        [
                            String(row.0), row.1, row.2, row.3 ?? "", row.4 ?? "", row.5 ?? "", row.6 ?? "",
                            String(row.7), row.8 ? "Yes" : "No",
                        ], to: &buffer)
                    last = (row.2, row.0)
                }
                guard let last else { break }
                try await writer.write(buffer)
                after = last
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}

/// CSV (RFC 4180) that spreadsheets can't be tricked by: a cell that starts like a formula
/// (`= + - @`, tab, carriage return) gets a leading `'`.
enum CSV {
    static func cell(_ value: String) -> String {
        var text = value
        if let first = text.unicodeScalars.first, "=+-@\t\r".unicodeScalars.contains(first) { text = "'" + text }
        // By scalar: "\r\n" is one Character, equal to neither "\r" nor "\n".
        if text.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
            text = "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return text
    }

    static func row(_ cells: [String], to buffer: inout ByteBuffer) {
        buffer.writeString(cells.map(cell).joined(separator: ","))
        buffer.writeString("\r\n")
    }
}

extension Parameters {
    /// An integer path parameter, or FastAPI's 422.
    func integerID(_ name: String) throws -> Int64 {
        guard let text = get(name), let value = Int64(text) else {
            throw ValidationError(
                location: ["path", name],
                message: "Input should be a valid integer, unable to parse string as an integer",
                type: "int_parsing"
            )
        }
        return value
    }
}
