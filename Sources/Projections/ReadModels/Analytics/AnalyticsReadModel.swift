import Domain
import EventStore
import Foundation
import PostgresNIO

/// The days (UTC, inclusive) and the camera an analytics answer covers.
public struct AnalyticsRange: Sendable {
    /// `YYYY-MM-DD`.
    public var start: String
    public var end: String
    public var dayCount: Int
    public var camera: String?

    public init(start: String, end: String, dayCount: Int, camera: String?) {
        self.start = start
        self.end = end
        self.dayCount = dayCount
        self.camera = camera
    }

    /// `WHERE` conditions on a table with `day` and `camera_id`, binding into `sql`.
    func conditions(_ sql: inout SQLBuilder) -> String {
        var condition = "day BETWEEN \(sql.bind(start))::date AND \(sql.bind(end))::date"
        if let camera { condition += " AND camera_id = \(sql.bind(camera))" }
        return condition
    }

    /// Every day of the range, as `days(day)`.
    func days(_ sql: inout SQLBuilder) -> String {
        "SELECT d::date AS day FROM generate_series(\(sql.bind(start))::date, \(sql.bind(end))::date, interval '1 day') d"
    }

    /// The answer's `start_date` and `end_date` pairs.
    func range(_ sql: inout SQLBuilder) -> String {
        "'start_date', \(sql.bind(start))::date, 'end_date', \(sql.bind(end))::date"
    }
}

/// Events of one camera at one score, over all history (the severity preview's input).
public struct ScoreTotal: Sendable {
    public var camera: String
    public var cameraName: String
    public var score: Int
    public var events: Int
}

/// How `/api/analytics/*` and the severity preview read the `analytics` read model (written by
/// ``AnalyticsProjection``): histograms per UTC day, rendered as JSON by PostgreSQL, every day
/// of the range present (zeros where nothing happened).
public struct AnalyticsReadModel: Sendable {
    let database: ReadDatabase

    public init(database: ReadDatabase) { self.database = database }

    /// The state of the read models analytics answers come from: their live generation and how
    /// many events each has applied (which moves exactly when their rows can change). Part of
    /// the answers' ETags.
    public func state() async throws -> String {
        let rows = try await database.rows(
            """
            SELECT coalesce(string_agg(p.name || ':' || p.live_generation || ':' || c.events_applied, ',' ORDER BY p.name), '')
            FROM projections p JOIN projection_checkpoints c ON c.name = p.name AND c.generation = p.live_generation
            WHERE p.name IN ('analytics', 'cameras')
            """)
        var state = ""
        for try await text in rows.decode(String.self) { state = text }
        return state
    }

    /// `{data_points: [{date, count}], total_detections, start_date, end_date}`.
    public func detectionTrends(_ scope: AnalyticsRange) async throws -> String {
        try await json { sql in
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
    /// events per day (of their start) by level under `thresholds`.
    public func riskHistory(_ scope: AnalyticsRange, thresholds: SeverityThresholds) async throws -> String {
        try await json { sql in
            let count = { (level: RiskLevel) in
                "sum(events) FILTER (WHERE \(thresholds.conditionSQL(score: "score", level: level))) AS \(level.rawValue)"
            }
            return """
                WITH days AS (\(scope.days(&sql))),
                counts AS (
                    SELECT day, \(RiskLevel.allCases.map(count).joined(separator: ", "))
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
    public func cameraUptime(_ scope: AnalyticsRange) async throws -> String {
        try await json { sql in
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
    public func objectDistribution(_ scope: AnalyticsRange) async throws -> String {
        try await json { sql in
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
    /// bucket_size}`: analyzed events by score, `size` wide (min inclusive, max exclusive)
    /// from 0; a score of exactly 100 counts in the last bucket (ceil(100 / size) buckets).
    public func riskScoreDistribution(_ scope: AnalyticsRange, bucketSize size: Int) async throws -> String {
        let buckets = (100 + size - 1) / size
        return try await json { sql in
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
    public func riskScoreTrends(_ scope: AnalyticsRange) async throws -> String {
        try await json { sql in
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

    /// Analyzed events per camera and score over all history (cameras by name), from the
    /// per-camera histogram: at most 101 rows per camera.
    public func scoreTotals() async throws -> [ScoreTotal] {
        let rows = try await database.rows(
            """
            SELECT s.camera_id, coalesce(c.name, s.camera_id), s.score, s.events
            FROM analytics_score_totals s LEFT JOIN cameras c ON c.id = s.camera_id
            WHERE s.events > 0
            ORDER BY 2, 1, 3
            """)
        var totals: [ScoreTotal] = []
        for try await (camera, name, score, events) in rows.decode((String, String, Int16, Int64).self) {
            totals.append(ScoreTotal(camera: camera, cameraName: name, score: Int(score), events: Int(events)))
        }
        return totals
    }

    private func json(_ build: (inout SQLBuilder) -> String) async throws -> String {
        try await database.json(build) ?? "{}"
    }
}
