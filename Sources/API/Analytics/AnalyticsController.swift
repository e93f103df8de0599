import Crypto
import Domain
import EventStore
import Foundation
import Hummingbird
import Logging
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
    let analytics: AnalyticsReadModel
    let settings: SystemSettingsReader
    let redis: RedisClient?
    let redisPrefix: String
    var cacheTimeout: Duration = .milliseconds(50)
    let logger: Logger

    static var cacheSeconds: Int { 300 }
    /// The longest range a request may ask for (one data point per day).
    static var maximumDays: Int { 3660 }

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

        /// What the read model is asked for.
        var range: AnalyticsRange { AnalyticsRange(start: start, end: end, dayCount: dayCount, camera: camera) }
    }

    // MARK: Routes

    /// `{data_points: [{date, count}], total_detections, start_date, end_date}`.
    @Sendable func detectionTrends(_ request: Request, context: Context) async throws -> Response {
        let scope = try Scope(QueryParameters(request))
        return try await respond(request) { try await analytics.detectionTrends(scope.range) }
    }

    /// `{data_points: [{date, low, medium, high, critical}], start_date, end_date}`: analyzed
    /// events per day (of their start) by level under the thresholds in force.
    @Sendable func riskHistory(_ request: Request, context: Context) async throws -> Response {
        let scope = try Scope(QueryParameters(request))
        let thresholds = try await settings.current().thresholds
        let variant = "\(thresholds.lowMax)/\(thresholds.mediumMax)/\(thresholds.highMax)"
        return try await respond(request, variant: variant) {
            try await analytics.riskHistory(scope.range, thresholds: thresholds)
        }
    }

    /// `{cameras: [{camera_id, camera_name, uptime_percentage, detection_count}], start_date,
    /// end_date}`: every camera (by name); uptime = days with a detection ÷ days × 100.
    @Sendable func cameraUptime(_ request: Request, context: Context) async throws -> Response {
        let scope = try Scope(QueryParameters(request))
        return try await respond(request) { try await analytics.cameraUptime(scope.range) }
    }

    /// `{object_types: [{object_type, count, percentage}], total_detections, start_date,
    /// end_date}`, most seen first.
    @Sendable func objectDistribution(_ request: Request, context: Context) async throws -> Response {
        let scope = try Scope(QueryParameters(request))
        return try await respond(request) { try await analytics.objectDistribution(scope.range) }
    }

    /// `{buckets: [{min_score, max_score, count}], total_events, start_date, end_date,
    /// bucket_size}`: analyzed events by score, `bucket_size` wide (default 10).
    @Sendable func riskScoreDistribution(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let scope = try Scope(query)
        let size = try query.integer("bucket_size", default: 10, in: 1...50)
        return try await respond(request) { try await analytics.riskScoreDistribution(scope.range, bucketSize: size) }
    }

    /// `{data_points: [{date, avg_score, count}], start_date, end_date}`: the mean score of the
    /// analyzed events of each day.
    @Sendable func riskScoreTrends(_ request: Request, context: Context) async throws -> Response {
        let scope = try Scope(QueryParameters(request))
        return try await respond(request) { try await analytics.riskScoreTrends(scope.range) }
    }

    // MARK: ETag and cache

    /// Answers with the body `compute` returns, or 304 when the client's copy is current, or the
    /// cached body of the same tag.
    private func respond(
        _ request: Request, variant: String = "", _ compute: () async throws -> String
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
        let body = try await compute()
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
        let state = try await analytics.state()
        let query = QueryParameters.pairs(request.uri.query).map { "\($0.name)=\($0.value)" }.sorted()
            .joined(separator: "&")
        let digest = SHA256.hash(data: Data("\(request.uri.path)?\(query)|\(variant)|\(state)".utf8))
        return "\"" + lowercaseHex(digest.prefix(16)) + "\""
    }
}
