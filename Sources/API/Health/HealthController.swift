import EventStore
import Foundation
import Hummingbird
import Logging
import Projections

/// `GET /health`: liveness, no dependency checked. `GET /ready`: PostgreSQL answers, what
/// holds the log's read horizon (a transaction open for long delays every reader), and every
/// projection that is not fine (failing, with parked events, or run by no instance).
struct HealthController<Context: RequestContext> {
    let store: EventStore
    let availability: DatabaseAvailability
    /// With Redis: whether the rate limiter could ask it last time.
    let limiter: RateLimiter?

    func addRoutes(to router: Router<Context>) {
        router.get("/health", use: health)
        router.get("/ready", use: ready)
    }

    @Sendable func health(_ request: Request, context: Context) async throws -> Response {
        var body = JSONWriter()
        body.object { $0.field("status", "alive") }
        return body.response()
    }

    @Sendable func ready(_ request: Request, context: Context) async throws -> Response {
        do {
            // Down, or going down while these wait: say so at once rather than wait for a
            // connection the pool can't make.
            let (checkpoint, oldest, statuses) = try await availability.untilDown {
                (try await store.head(), try await store.horizonHolders(limit: 1), try await store.projectionStatuses())
            }
            let summary = HealthSummary(statuses, limiter: limiter)
            let (unhealthy, projections, limiterHealth, fine) = (
                summary.unhealthy, summary.projections, summary.limiter, summary.fine
            )
            var body = JSONWriter()
            body.object { object in
                // Still ready (the API answers from what the read models hold), but loudly not fine.
                object.field("status", fine ? "ready" : "degraded")
                object.object("checks") {
                    $0.field("database", "healthy")
                    $0.field("projections", projections)
                    if let limiterHealth {
                        $0.field("rate_limiter", limiterHealth.reachable ? "healthy" : "unavailable")
                    }
                }
                if let limiter, let limiterHealth, !limiterHealth.reachable {
                    object.field("rate_limiter_error", limiterHealth.error)
                    object.field("rate_limiter_policy", limiter.failClosed ? "requests refused" : "requests pass")
                }
                if !unhealthy.isEmpty {
                    object.array("projections") { array in
                        for status in unhealthy {
                            array.object { item in
                                item.field("name", status.name)
                                Self.write(status, into: &item)
                            }
                        }
                    }
                }
                object.object("log") { log in
                    log.field("head", checkpoint.token)
                    if let holder = oldest.first {
                        log.object("horizon_held_by") { Self.write(holder, into: &$0) }
                    }
                }
            }
            return body.response()
        } catch {
            context.logger.warning("readiness check failed", metadata: ["error": "\(String(reflecting: error))"])
            let status = availability.current
            var body = JSONWriter()
            body.object { object in
                object.field("status", "not_ready")
                object.object("checks") { $0.field("database", "unhealthy") }
                if !status.isUp {
                    object.field("database_error", status.error)
                    object.field("database_down_since", status.since.formatted(.iso8601))
                } else {
                    // The probe has not seen it yet (or it was this check alone): its own error.
                    object.field("database_error", String(reflecting: error))
                }
            }
            return body.response(status: .serviceUnavailable)
        }
    }
}

extension HealthController {
    /// A projection's health, state, lag, parked events and last error.
    static func write(_ status: ProjectionStatus, into item: inout JSONWriter.ObjectWriter) {
        item.field("health", status.health)
        item.field("state", status.state)
        item.field("lag_events", status.lagEvents)
        item.field("lag_seconds", status.lagSeconds)
        item.field("parked_events", status.parkedEvents + (status.rebuild?.parkedEvents ?? 0))
        item.field("last_error", status.lastError)
    }

    /// The session that holds the log's read horizon: who, and for how long.
    static func write(_ holder: HorizonHolder, into held: inout JSONWriter.ObjectWriter) {
        held.field("pid", Int64(holder.pid))
        held.field("application", holder.application)
        held.field("database", holder.database)
        held.field("state", holder.state)
        held.field("transaction_age_seconds", holder.transactionAge)
        held.field("query", holder.query)
    }
}

/// How healthy a server is that reaches PostgreSQL, by one rule for `/ready` and `/ws/system`:
/// fine when every projection is (``ProjectionStatus/health`` `ok`) and Redis answered the rate
/// limiter last time it asked.
struct HealthSummary {
    /// The projections that are not fine.
    let unhealthy: [ProjectionStatus]
    /// `healthy`, `degraded` (some not fine) or `failing` (one failing).
    let projections: String
    /// The rate limiter's view of Redis, when it has one.
    let limiter: RateLimiter.Health?

    init(_ statuses: [ProjectionStatus], limiter: RateLimiter?) {
        unhealthy = statuses.filter { $0.health != "ok" }
        projections =
            unhealthy.contains { $0.health == "failing" } ? "failing" : unhealthy.isEmpty ? "healthy" : "degraded"
        self.limiter = limiter?.health
    }

    var fine: Bool { unhealthy.isEmpty && limiter?.reachable != false }

    /// The seed's word for a server's health (`/api/system/health`, `/ws/system`): `unhealthy`
    /// when PostgreSQL did not answer (no summary), `degraded` when the summary is not fine or
    /// Redis did not answer, else `healthy`.
    static func status(_ summary: HealthSummary?, redisAnswers: Bool) -> String {
        guard let summary else { return "unhealthy" }
        return summary.fine && redisAnswers ? "healthy" : "degraded"
    }
}
