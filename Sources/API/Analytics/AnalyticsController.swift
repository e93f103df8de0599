import Crypto
import Domain
import EventStore
import Foundation
import Hummingbird
import PostgresNIO
import Projections
import Redis

/// `/api/analytics/*`: dashboards over the `analytics` read model, by UTC day, every day of
/// the range present (zeros where nothing happened).
///
/// Responses carry an `ETag` derived from the request and the state of the read models they
/// come from (generation and events applied of `analytics` and `cameras`, and the thresholds
/// for risk-history): `If-None-Match` with it is a 304 without touching the data. Bodies are
/// cached in Redis for 5 minutes under that tag, so a cached body is never older than the read
/// model it was read from; without Redis every request is computed. A cache read or write
/// that takes longer than `cacheTimeout` is given up and the answer computed without it, so a
/// hung Redis costs a request tens of milliseconds, not the command timeout.
struct AnalyticsController<Context: RequestContext> {
    let store: EventStore
    let settings: SystemSettingsReader
    let redis: RedisClient?
    let redisPrefix: String
    var cacheTimeout: Duration = .milliseconds(50)

    static var cacheSeconds: Int { 300 }
    /// The longest range a request may ask for (one data point per day).
    static var maximumDays: Int { 3660 }

    var client: PostgresClient { store.client }
    var logger: Logger { store.logger }

    func addRoutes(to router: Router<Context>) {
        let analytics = router.group("/api/analytics")
        analytics.get("detection-trends", use: detectionTrends)
        analytics.get("risk-history", use: riskHistory)
        analytics.get("camera-uptime", use: cameraUptime)
        analytics.get("object-distribution", use: objectDistribution)
        analytics.get("risk-score-distribution", use: riskScoreDistribution)
        analytics.get("risk-score-trends", use: riskScoreTrends)
    }

    /// The range and camera every analytics request takes.
    struct Scope {
        var start: String
        var end: String
        var dayCount: Int
        var camera: String?

        init(_ query: QueryParameters) throws {
            var issues: [ValidationError.Issue] = []
            func day(_ name: String) -> Date? {
                guard let text = query.string(name) else {
                    issues.append(.init(location: ["query", name], message: "Field required", type: "missing"))
                    return nil
                }
                // Strict (no 2026-02-30), and a year PostgreSQL's `date` reads (0001-9999).
                guard let date = Timestamp.parseDay(text), Timestamp.representable.contains(date) else {
                    issues.append(
                        .init(
                            location: ["query", name], message: "Input should be a valid date in the format YYYY-MM-DD",
                            type: "date_parsing"))
                    return nil
                }
                return date
            }
            let start = day("start_date")
            let end = day("end_date")
            if let tz = query.string("tz"), !["UTC", "Etc/UTC", "Z"].contains(tz) {
                issues.append(
                    .init(
                        location: ["query", "tz"], message: "Only UTC days are supported for now (tz=UTC)",
                        type: "value_error"))
            }
            if !issues.isEmpty { throw ValidationError(issues) }
            guard let start, let end else { throw ValidationError(issues) }
            if start > end { throw APIError.badRequest("start_date must be before or equal to end_date") }
            dayCount = Int((end.timeIntervalSince(start) / 86_400).rounded()) + 1
            if dayCount > AnalyticsController.maximumDays {
                throw APIError.badRequest("The date range may span at most \(AnalyticsController.maximumDays) days")
            }
            let format = Date.ISO8601FormatStyle().year().month().day()
            self.start = start.formatted(format)
            self.end = end.formatted(format)
            camera = query.string("camera_id")
        }

        /// `WHERE` conditions on a table with `day` and `camera_id`, binding into `sql`.
        func conditions(_ sql: inout SQLBuilder, table: String = "") -> String {
            let prefix = table.isEmpty ? "" : "\(table)."
            var condition = "\(prefix)day BETWEEN \(sql.bind(start))::date AND \(sql.bind(end))::date"
            if let camera { condition += " AND \(prefix)camera_id = \(sql.bind(camera))" }
            return condition
        }

        /// Every day of the range, as `days(day)`, with the range's bounds bound into `sql`.
        func days(_ sql: inout SQLBuilder) -> String {
            "SELECT d::date AS day FROM generate_series(\(sql.bind(start))::date, \(sql.bind(end))::date, interval '1 day') d"
        }

        func range(_ sql: inout SQLBuilder) -> String {
            "'start_date', \(sql.bind(start))::date, 'end_date', \(sql.bind(end))::date"
        }
    }

    // MARK: Routes

    /// `{data_points: [{date, count}], total_detections, start_date, end_date}`.
    @Sendable func detectionTrends(_ request: Request, context: Context) async throws -> Response {
        let scope = try Scope(QueryParameters(request))
        return try await respond(request) { sql in
            """
            WITH days AS (\(scope.days(&sql))),
            counts AS (
                SELECT day, sum(detections) AS n FROM analytics_detections WHERE \(scope.conditions(&sql)) GROUP BY day
            )
            SELECT json_build_object(
                'data_points', json_agg(json_build_object('date', days.day, 'count', coalesce(counts.n, 0)) ORDER BY days.day),
                'total_detections', coalesce(sum(counts.n), 0), \(scope.range(&sql)))::text
            FROM days LEFT JOIN counts USING (day)
            """
        }
    }

    /// `{data_points: [{date, low, medium, high, critical}], start_date, end_date}`: analyzed
    /// events per day (of their start) by level under the thresholds in force.
    @Sendable func riskHistory(_ request: Request, context: Context) async throws -> Response {
        let scope = try Scope(QueryParameters(request))
        let thresholds = try await settings.current().thresholds
        let variant = "\(thresholds.lowMax)/\(thresholds.mediumMax)/\(thresholds.highMax)"
        return try await respond(request, variant: variant) { sql in
            let (low, medium, high) = (
                sql.bind(thresholds.lowMax), sql.bind(thresholds.mediumMax), sql.bind(thresholds.highMax)
            )
            return """
                WITH days AS (\(scope.days(&sql))),
                counts AS (
                    SELECT day,
                           sum(events) FILTER (WHERE score <= \(low)) AS low,
                           sum(events) FILTER (WHERE score > \(low) AND score <= \(medium)) AS medium,
                           sum(events) FILTER (WHERE score > \(medium) AND score <= \(high)) AS high,
                           sum(events) FILTER (WHERE score > \(high)) AS critical
                    FROM analytics_scores WHERE \(scope.conditions(&sql)) GROUP BY day
                )
                SELECT json_build_object(
                    'data_points', json_agg(json_build_object(
                        'date', days.day, 'low', coalesce(low, 0), 'medium', coalesce(medium, 0),
                        'high', coalesce(high, 0), 'critical', coalesce(critical, 0)) ORDER BY days.day),
                    \(scope.range(&sql)))::text
                FROM days LEFT JOIN counts USING (day)
                """
        }
    }

    /// `{cameras: [{camera_id, camera_name, uptime_percentage, detection_count}], start_date,
    /// end_date}`: every camera (by name); uptime = days with a detection ÷ days × 100.
    @Sendable func cameraUptime(_ request: Request, context: Context) async throws -> Response {
        let scope = try Scope(QueryParameters(request))
        return try await respond(request) { sql in
            var cameraCondition = "c.removed_at IS NULL"
            if let camera = scope.camera { cameraCondition += " AND c.id = \(sql.bind(camera))" }
            return """
                WITH seen AS (
                    SELECT camera_id, count(DISTINCT day) AS days, sum(detections) AS n
                    FROM analytics_detections WHERE \(scope.conditions(&sql)) GROUP BY camera_id
                )
                SELECT json_build_object(
                    'cameras', coalesce(json_agg(json_build_object(
                        'camera_id', c.id, 'camera_name', c.name,
                        'uptime_percentage', round(coalesce(seen.days, 0) * 100.0 / \(sql.bind(scope.dayCount)), 2)::float8,
                        'detection_count', coalesce(seen.n, 0)) ORDER BY c.name, c.id), '[]'::json),
                    \(scope.range(&sql)))::text
                FROM cameras c LEFT JOIN seen ON seen.camera_id = c.id
                WHERE \(cameraCondition)
                """
        }
    }

    /// `{object_types: [{object_type, count, percentage}], total_detections, start_date,
    /// end_date}`, most seen first.
    @Sendable func objectDistribution(_ request: Request, context: Context) async throws -> Response {
        let scope = try Scope(QueryParameters(request))
        return try await respond(request) { sql in
            """
            WITH counts AS (
                SELECT object_type, sum(detections) AS n FROM analytics_detections
                WHERE \(scope.conditions(&sql)) GROUP BY object_type
            ),
            total AS (SELECT coalesce(sum(n), 0) AS n FROM counts)
            SELECT json_build_object(
                'object_types', coalesce((
                    SELECT json_agg(json_build_object(
                        'object_type', object_type, 'count', counts.n,
                        'percentage', round(counts.n * 100.0 / total.n, 2)::float8) ORDER BY counts.n DESC, object_type)
                    FROM counts, total), '[]'::json),
                'total_detections', (SELECT n FROM total), \(scope.range(&sql)))::text
            """
        }
    }

    /// `{buckets: [{min_score, max_score, count}], total_events, start_date, end_date,
    /// bucket_size}`: analyzed events by score, `bucket_size` wide (min inclusive, max exclusive)
    /// from 0; a score of exactly 100 counts in the last bucket (ceil(100 / size) buckets).
    @Sendable func riskScoreDistribution(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let scope = try Scope(query)
        let size = try query.integer("bucket_size", default: 10, in: 1...50)
        let buckets = (100 + size - 1) / size
        return try await respond(request) { sql in
            let (width, last) = (sql.bind(size), sql.bind(buckets - 1))
            return """
                WITH counts AS (
                    SELECT least(score / \(width), \(last)) AS bucket, sum(events) AS n
                    FROM analytics_scores WHERE \(scope.conditions(&sql)) GROUP BY 1
                )
                SELECT json_build_object(
                    'buckets', json_agg(json_build_object(
                        'min_score', b * \(width), 'max_score', (b + 1) * \(width), 'count', coalesce(counts.n, 0))
                        ORDER BY b),
                    'total_events', coalesce(sum(counts.n), 0), \(scope.range(&sql)), 'bucket_size', \(width))::text
                FROM generate_series(0, \(last)) b LEFT JOIN counts ON counts.bucket = b
                """
        }
    }

    /// `{data_points: [{date, avg_score, count}], start_date, end_date}`: the mean score of the
    /// analyzed events of each day (2 decimals; 0 with count 0 on a day without any).
    @Sendable func riskScoreTrends(_ request: Request, context: Context) async throws -> Response {
        let scope = try Scope(QueryParameters(request))
        return try await respond(request) { sql in
            """
            WITH days AS (\(scope.days(&sql))),
            counts AS (
                SELECT day, sum(score * events) AS total, sum(events) AS n
                FROM analytics_scores WHERE \(scope.conditions(&sql)) GROUP BY day
            )
            SELECT json_build_object(
                'data_points', json_agg(json_build_object(
                    'date', days.day,
                    'avg_score', coalesce(round(counts.total / nullif(counts.n, 0), 2), 0)::float8,
                    'count', coalesce(counts.n, 0)) ORDER BY days.day),
                \(scope.range(&sql)))::text
            FROM days LEFT JOIN counts USING (day)
            """
        }
    }

    // MARK: ETag and cache

    /// Answers with the body `build` selects, or 304 when the client's copy is current, or the
    /// cached body of the same tag.
    private func respond(
        _ request: Request, variant: String = "", _ build: (inout SQLBuilder) -> String
    ) async throws -> Response {
        let tag = try await entityTag(request, variant: variant)
        var headers: HTTPFields = [.eTag: tag, .cacheControl: "no-cache"]
        if let match = request.headers[.ifNoneMatch],
            match.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == tag || $0 == "*" })
        {
            return Response(status: .notModified, headers: headers)
        }
        let key = "\(redisPrefix)analytics:\(tag.trimmingCharacters(in: CharacterSet(charactersIn: "\"")))"
        if let redis {
            do {
                if let cached = try await redis.get(key, within: cacheTimeout) {
                    headers[.init("X-Cache")!] = "HIT"
                    return jsonResponse(cached, headers: headers)
                }
            } catch {
                logger.debug("analytics cache unavailable", metadata: ["error": "\(error)"])
            }
        }
        let body = try await itemJSON(client: client, logger: logger, build) ?? "{}"
        if let redis {
            do {
                try await redis.set(key, body, expireSeconds: Self.cacheSeconds, within: cacheTimeout)
            } catch {
                logger.debug("analytics cache unavailable", metadata: ["error": "\(error)"])
            }
        }
        headers[.init("X-Cache")!] = "MISS"
        return jsonResponse(body, headers: headers)
    }

    /// A strong tag of the path, the query (parameters sorted), `variant`, and the state of the
    /// read models the answer comes from: their live generation and how many events each has
    /// applied (which moves exactly when their rows can change).
    private func entityTag(_ request: Request, variant: String) async throws -> String {
        let rows = try await client.guardedQuery(
            """
            SELECT coalesce(string_agg(p.name || ':' || p.live_generation || ':' || c.events_applied, ',' ORDER BY p.name), '')
            FROM projections p JOIN projection_checkpoints c ON c.name = p.name AND c.generation = p.live_generation
            WHERE p.name IN ('analytics', 'cameras')
            """, logger: logger)
        var state = ""
        for try await text in rows.decode(String.self) { state = text }
        let query = request.uri.queryParameters.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "&")
        let digest = SHA256.hash(data: Data("\(request.uri.path)?\(query)|\(variant)|\(state)".utf8))
        return "\"" + digest.prefix(16).map { String(format: "%02x", $0) }.joined() + "\""
    }
}
