import EventStore
import Foundation
import Hummingbird
import Projections
import Redis

/// The seeds' health routes beside `/health` and `/ready`:
///
/// - `GET /api/system/health/live`: `{"status": "alive"}`, no dependency asked.
/// - `GET /api/system/health`: `{"status", "services": {database, redis, projections},
///   "timestamp"}`, each service `{status, message, details}`; `200` when `healthy`, `503` when
///   `degraded` (Redis not answering, a projection not fine) or `unhealthy` (PostgreSQL not
///   answering), as the seed has it.
/// - `GET /api/system/health/ready`: `{"ready", "status": "ready" | "degraded" | "not_ready",
///   "services", "workers", "timestamp"}`; `503` only when `not_ready` (PostgreSQL down): a
///   degraded server still answers from what its read models hold.
///
/// One rule for all of them and `/ws/system`: ``HealthSummary``.
struct SystemHealthController<Context: RequestContext> {
    let store: EventStore
    let availability: DatabaseAvailability
    let limiter: RateLimiter?
    let redis: RedisClient?
    /// Whether this server runs the built-in analyzer on `analysis_queue`.
    let runsAnalyzer: Bool

    func addRoutes(to router: Router<Context>) {
        router.get("/api/system/health/live") { _, _ in
            var body = JSONWriter()
            body.object { $0.field("status", "alive") }
            return body.response()
        }
        router.get("/api/system/health", use: detailed)
        router.get("/api/system/health/ready", use: readiness)
    }

    /// What every dependency said, asked now and bounded (a database that is down answers at
    /// once, Redis gets a second).
    struct Checks {
        var database: Result<(head: Checkpoint, holder: HorizonHolder?, statuses: [ProjectionStatus]), any Error>
        /// nil without Redis; the PING's round trip in milliseconds, or why it failed.
        var redis: Result<Double, any Error>?

        var summary: HealthSummary? { (try? database.get()).map { HealthSummary($0.statuses, limiter: nil) } }
        var redisAnswers: Bool { (try? redis?.get()) != nil || redis == nil }

        /// `healthy`, `degraded` or `unhealthy` (the seed's words).
        var status: String { HealthSummary.status(summary, redisAnswers: redisAnswers) }
    }

    /// `body`'s value or error (`Result(catching:)` takes no async body).
    static func outcome<Value>(_ body: () async throws -> Value) async -> Result<Value, any Error> {
        do { return .success(try await body()) } catch { return .failure(error) }
    }

    func check() async -> Checks {
        let database = await Self.outcome {
            try await availability.untilDown {
                (
                    head: try await store.head(), holder: try await store.horizonHolders(limit: 1).first,
                    statuses: try await store.projectionStatuses()
                )
            }
        }
        var redisCheck: Result<Double, any Error>?
        if let redis {
            let started = ContinuousClock.now
            redisCheck = await Self.outcome {
                _ = try await redis.send(["PING"], within: .seconds(1))
                return (ContinuousClock.now - started) / .milliseconds(1)
            }
        }
        return Checks(database: database, redis: redisCheck)
    }

    @Sendable func detailed(_ request: Request, context: Context) async throws -> Response {
        let checks = await check()
        var body = JSONWriter()
        body.object { object in
            object.field("status", checks.status)
            object.object("services") { services(checks, into: &$0) }
            object.field("timestamp", JSONWriter.microseconds(Date()))
        }
        return body.response(status: checks.status == "healthy" ? .ok : .serviceUnavailable)
    }

    @Sendable func readiness(_ request: Request, context: Context) async throws -> Response {
        let checks = await check()
        let status = ["healthy": "ready", "degraded": "degraded"][checks.status] ?? "not_ready"
        var body = JSONWriter()
        body.object { object in
            object.field("ready", status != "not_ready")
            object.field("status", status)
            object.object("services") { services(checks, into: &$0) }
            object.array("workers") { workers in
                for projection in (try? checks.database.get().statuses) ?? [] {
                    workers.object { worker in
                        worker.field("name", "projection:\(projection.name)")
                        worker.field("running", projection.isLeased)
                        worker.field(
                            "message", projection.lastError ?? (projection.isLeased ? nil : "run by no instance"))
                    }
                }
                workers.object { worker in
                    worker.field("name", "analysis_worker")
                    worker.field("running", runsAnalyzer && redis != nil)
                    worker.field(
                        "message",
                        runsAnalyzer
                            ? (redis == nil ? "no Redis: no analysis queue" : nil) : "off here (VIGIL_ANALYZER)")
                }
            }
            object.field("timestamp", JSONWriter.microseconds(Date()))
        }
        return body.response(status: status == "not_ready" ? .serviceUnavailable : .ok)
    }

    private func services(_ checks: Checks, into services: inout JSONWriter.ObjectWriter) {
        services.object("database") { database in
            switch checks.database {
            case .success(let found):
                database.field("status", "healthy")
                database.field("message", "Database operational")
                database.object("details") { details in
                    details.field("log_head", found.head.token)
                    if let holder = found.holder {
                        details.object("horizon_held_by") { HealthController<Context>.write(holder, into: &$0) }
                    } else {
                        details.field("horizon_held_by", nil as String?)
                    }
                }
            case .failure(let error):
                let status = availability.current
                database.field("status", "unhealthy")
                database.field("message", "Database unavailable")
                database.object("details") { details in
                    details.field("error", status.isUp ? String(reflecting: error) : status.error)
                    if !status.isUp { details.field("down_since", JSONWriter.microseconds(status.since)) }
                }
            }
        }
        services.object("redis") { entry in
            switch checks.redis {
            case nil:
                entry.field("status", "not_configured")
                entry.field("message", "No Redis (VIGIL_REDIS=off): no analysis queue, cache or rate limits")
                entry.field("details", nil as String?)
            case .success(let milliseconds):
                entry.field("status", "healthy")
                entry.field("message", "Redis connected")
                entry.object("details") { $0.field("latency_ms", (milliseconds * 10).rounded() / 10) }
            case .failure(let error):
                entry.field("status", "unhealthy")
                entry.field("message", "Redis not answering")
                entry.object("details") { $0.field("error", String(describing: error)) }
            }
        }
        services.object("projections") { entry in
            guard let statuses = try? checks.database.get().statuses, let summary = checks.summary else {
                entry.field("status", "unknown")
                entry.field("message", "Unknown while the database does not answer")
                entry.field("details", nil as String?)
                return
            }
            entry.field("status", summary.projections)
            entry.field(
                "message",
                summary.unhealthy.isEmpty
                    ? "Every read model is applying the log"
                    : "Not fine: " + summary.unhealthy.map(\.name).joined(separator: ", "))
            entry.object("details") { details in
                for status in statuses {
                    details.object(status.name) { HealthController<Context>.write(status, into: &$0) }
                }
            }
        }
    }
}
