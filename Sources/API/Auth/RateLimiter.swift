import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Projections
import Redis
import Synchronization

/// Per client address and tier, a sliding window of requests in Redis: one sorted set per
/// (tier, address) of the request times in the last window, trimmed, counted and added to in
/// one script, so concurrent requests on every instance of a cluster share the budget.
///
/// The limits come from the system settings (``RateLimits``, off by default; a change is an
/// event), read at most once a second. Redis is asked within `timeout`: when it doesn't answer
/// (down, or hanging), requests pass (`failClosed`: they get a 503 instead), and ``health``
/// says so for `/ready`.
final class RateLimiter: Sendable {
    /// Whether the last check could ask Redis, and when that changed.
    struct Health: Sendable {
        var reachable = true
        var error: String?
    }

    private let redis: RedisClient
    private let prefix: String
    private let settings: SystemSettingsReader
    private let window: Duration
    private let timeout: Duration
    let failClosed: Bool
    private let logger: Logger
    private let cached = Mutex<(limits: RateLimits, read: ContinuousClock.Instant)?>(nil)
    private let state = Mutex(Health())

    init(
        redis: RedisClient, prefix: String, settings: SystemSettingsReader, window: Duration, timeout: Duration,
        failClosed: Bool, logger: Logger
    ) {
        self.redis = redis
        self.prefix = prefix
        self.settings = settings
        self.window = window
        self.timeout = timeout
        self.failClosed = failClosed
        self.logger = logger
    }

    var health: Health { state.withLock { $0 } }

    /// What a check decided.
    enum Decision: Sendable {
        /// Limits are off.
        case unlimited
        /// Allowed; the headers to send.
        case allowed(limit: Int, remaining: Int, reset: Int)
        /// Over the limit: retry after `retryAfter` seconds.
        case refused(limit: Int, reset: Int, retryAfter: Int)
        /// Redis didn't answer in time.
        case unavailable
    }

    /// The tier of a route (as the router names it): none for the open routes (the health
    /// probes), `ingest` for those that need the ingest permission (``AccessPolicy``), `search`
    /// for the expensive reads, else `standard`.
    static func tier(_ method: HTTPRequest.Method, _ route: String) -> RateLimitTier? {
        switch AccessPolicy.access(method, route) {
        case .open: return nil
        case .needs(.ingest): return .ingest
        case .needs: break
        }
        switch "\(method.rawValue) \(route)" {
        case "GET /api/events/search", "GET /api/events/export": return .search
        default: return .standard
        }
    }

    func check(tier: RateLimitTier, client: String) async -> Decision {
        let limits: RateLimits
        do {
            limits = try await currentLimits()
        } catch {
            // The settings can't be read (the database is down): no limit to apply.
            return .unlimited
        }
        guard limits.enabled else { return .unlimited }
        let limit = limits.limit(tier)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let windowMS = Int64(window / .milliseconds(1))
        let key = "\(prefix)ratelimit:\(tier.rawValue):\(client)"
        let member = "\(now)-\(UInt64.random(in: 0 ... .max))"
        do {
            let answer = try await redis.send(
                ["EVAL", Self.script, "1", key, String(now), String(windowMS), String(limit), member], within: timeout)
            record(nil)
            guard case .array(let values) = answer, values.count == 3,
                case .integer(let allowed) = values[0], case .integer(let count) = values[1],
                case .integer(let oldest) = values[2]
            else { return .unavailable }
            let reset = Int((oldest + windowMS + 999) / 1000)
            if allowed == 1 { return .allowed(limit: limit, remaining: max(0, limit - Int(count)), reset: reset) }
            return .refused(limit: limit, reset: reset, retryAfter: max(1, Int((oldest + windowMS - now + 999) / 1000)))
        } catch {
            record("\(error)")
            return .unavailable
        }
    }

    private func currentLimits() async throws -> RateLimits {
        let now = ContinuousClock.now
        if let cached = cached.withLock({ $0 }), now - cached.read < .seconds(1) { return cached.limits }
        let limits = try await settings.current().rateLimits
        cached.withLock { $0 = (limits, now) }
        return limits
    }

    private func record(_ error: String?) {
        let changed = state.withLock { health -> Bool in
            defer { health = Health(reachable: error == nil, error: error) }
            return health.reachable != (error == nil)
        }
        if changed, let error {
            logger.error(
                "rate limiter: Redis did not answer; requests \(failClosed ? "are refused" : "pass unlimited")",
                metadata: ["error": "\(error)"])
        } else if changed {
            logger.notice("rate limiter: Redis answers again")
        }
    }

    /// Trims the window, then admits the request if fewer than the limit are in it. Returns
    /// `{allowed, count in the window (with this one if allowed), time of the oldest}`.
    static let script = """
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
        local count = redis.call('ZCARD', KEYS[1])
        local allowed = 0
        if count < tonumber(ARGV[3]) then
          redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
          count = count + 1
          allowed = 1
        end
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
        local first = tonumber(ARGV[1])
        if oldest[2] then first = tonumber(oldest[2]) end
        return {allowed, count, first}
        """
}

/// Applies ``RateLimiter`` to every route but the health probes, per client address: every
/// answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (epoch
/// seconds); over the limit it is `429 {"detail"}` with `Retry-After`, recorded (rate-limited
/// itself) as a refusal.
struct RateLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let limiter: RateLimiter?
    let rejections: RejectionRecorder

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        let route = context.endpointPath ?? request.uri.path
        guard let limiter, let tier = RateLimiter.tier(request.method, route) else {
            return try await next(request, context)
        }
        let client = RequestOrigin.clientAddress ?? "local"
        switch await limiter.check(tier: tier, client: client) {
        case .unlimited:
            return try await next(request, context)
        case .unavailable:
            if limiter.failClosed { throw APIError(.serviceUnavailable, "Rate limiter unavailable") }
            return try await next(request, context)
        case .allowed(let limit, let remaining, let reset):
            var response = try await next(request, context)
            response.headers.append(contentsOf: Self.headers(limit: limit, remaining: remaining, reset: reset))
            return response
        case .refused(let limit, let reset, let retryAfter):
            let detail =
                "Rate limit exceeded: \(limit) requests per window for the \(tier.rawValue) tier; retry in \(retryAfter) s"
            await rejections.recordRateLimited(request, tier: tier, detail: detail)
            var body = JSONWriter()
            body.object { $0.field("detail", detail) }
            var headers = Self.headers(limit: limit, remaining: 0, reset: reset)
            headers[.retryAfter] = String(retryAfter)
            return body.response(status: .tooManyRequests, headers: headers)
        }
    }

    static func headers(limit: Int, remaining: Int, reset: Int) -> HTTPFields {
        [
            HTTPField.Name("X-RateLimit-Limit")!: String(limit),
            HTTPField.Name("X-RateLimit-Remaining")!: String(remaining),
            HTTPField.Name("X-RateLimit-Reset")!: String(reset),
        ]
    }
}
