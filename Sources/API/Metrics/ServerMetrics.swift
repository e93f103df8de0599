import EventStore
import Foundation
import Hummingbird
import Projections
import Prometheus
import Redis
import Synchronization

/// This server's Prometheus metrics (`GET /api/metrics`), in a registry of its own (not the
/// process-wide swift-metrics system, so several servers in one process keep theirs apart).
///
/// Counted as they happen: requests by method, route template and status, with their latency
/// (``MetricsMiddleware``); rate-limited requests; appends (transactions, requests, events, and
/// requests per transaction). Read when scraped: projection lag and parked events per projector,
/// WebSocket clients per endpoint, Redis command failures, the database's availability.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    /// The Redis client's failures already added to `vigil_redis_errors_total`.
    private let redisErrorsCounted = Mutex(0)
    private let requestSeriesMade = Mutex<[RequestKey: (count: Counter, latency: DurationHistogram)]>([:])
    private let rateLimitedCount: Counter
    private let commits: (transactions: Counter, requests: Counter, events: Counter, batchSize: ValueHistogram)

    init() {
        rateLimitedCount = registry.makeCounter(descriptor: Self.rateLimited, labels: [])
        commits = (
            registry.makeCounter(descriptor: Self.appendTransactions, labels: []),
            registry.makeCounter(descriptor: Self.appendRequests, labels: []),
            registry.makeCounter(descriptor: Self.appendedEvents, labels: []),
            registry.makeValueHistogram(descriptor: Self.batchSize, labels: [], buckets: Self.batchBuckets)
        )
    }

    static let latencyBuckets: [Duration] = [
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2500), .seconds(5), .seconds(10),
    ]
    static let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 500]

    private static func name(_ metric: String, _ unit: String = "", _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: metric, unitName: unit, helpText: help)
    }

    static var requests: MetricNameDescriptor {
        name("http_requests", "total", "HTTP requests by method, route template and status")
    }
    static var latency: MetricNameDescriptor {
        name("http_request_duration", "seconds", "HTTP request latency by method and route template")
    }
    static var rateLimited: MetricNameDescriptor {
        name("vigil_rate_limited_requests", "total", "Requests refused by the rate limiter (429)")
    }
    static var appendTransactions: MetricNameDescriptor {
        name("vigil_append_transactions", "total", "Group-commit transactions that appended events")
    }
    static var appendRequests: MetricNameDescriptor {
        name("vigil_append_requests", "total", "Append requests committed")
    }
    static var appendedEvents: MetricNameDescriptor {
        name("vigil_appended_events", "total", "Events appended through the group commit")
    }
    static var batchSize: MetricNameDescriptor {
        name("vigil_append_batch_requests", "", "Append requests per group-commit transaction")
    }
    static var lagEvents: MetricNameDescriptor {
        name("vigil_projection_lag_events", "", "Events a projection has still to apply")
    }
    static var lagSeconds: MetricNameDescriptor {
        name("vigil_projection_lag", "seconds", "How far behind the log a projection is")
    }
    static var parked: MetricNameDescriptor {
        name("vigil_projection_parked_events", "", "Events a projection could not apply (unresolved)")
    }
    static var webSocketClients: MetricNameDescriptor {
        name("vigil_websocket_clients", "", "Open WebSocket clients by endpoint")
    }
    static var redisErrors: MetricNameDescriptor {
        name("vigil_redis_errors", "total", "Redis commands that failed")
    }
    static var databaseUp: MetricNameDescriptor {
        name("vigil_database_up", "", "1 when PostgreSQL answers, else 0")
    }

    /// The metrics route (`GET /api/metrics`): Prometheus' text format.
    func addRoute<Context: RequestContext>(
        to router: Router<Context>, store: EventStore, availability: DatabaseAvailability, redis: RedisClient?,
        feeds: LiveFeedsHealth
    ) {
        router.get("/api/metrics") { _, _ in
            let bytes = await self.exposition(store: store, availability: availability, redis: redis, feeds: feeds)
            var buffer = ByteBuffer()
            buffer.writeBytes(bytes)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: buffer))
        }
    }

    /// Counts one finished request.
    func request(method: String, endpoint: String, status: Int, duration: Duration) {
        let series = requestSeries(RequestKey(method: method, endpoint: endpoint, status: status))
        series.count.increment()
        series.latency.record(duration)
        if status == 429 { rateLimitedCount.increment() }
    }

    /// Counts one committed group-commit transaction (``GroupCommitAppender/Options/onCommit``).
    func committed(requests: Int, events: Int) {
        commits.transactions.increment()
        commits.requests.increment(by: Int64(requests))
        commits.events.increment(by: Int64(events))
        commits.batchSize.record(Double(requests))
    }

    /// A request's series: method, route template and status.
    private struct RequestKey: Hashable {
        var method: String
        var endpoint: String
        var status: Int
    }

    /// Made once per method, route and status, then looked up: the registry validates every
    /// name and label and builds the series' key at each `make…` (about 1.5% of a write node's
    /// CPU when made per request; docs/BENCHMARKS.md, Ingest, session 46).
    private func requestSeries(_ key: RequestKey) -> (count: Counter, latency: DurationHistogram) {
        if let series = requestSeriesMade.withLock({ $0[key] }) { return series }
        let series = (
            count: registry.makeCounter(
                descriptor: Self.requests,
                labels: [("method", key.method), ("endpoint", key.endpoint), ("status", String(key.status))]),
            latency: registry.makeDurationHistogram(
                descriptor: Self.latency, labels: [("method", key.method), ("endpoint", key.endpoint)],
                buckets: Self.latencyBuckets)
        )
        requestSeriesMade.withLock { $0[key] = series }
        return series
    }

    /// The exposition, after reading what is read when scraped. A part that can't be read (the
    /// database away) leaves its gauges as they were and says so in `vigil_database_up`.
    func exposition(
        store: EventStore, availability: DatabaseAvailability, redis: RedisClient?, feeds: LiveFeedsHealth
    ) async -> [UInt8] {
        let up = availability.isUp
        registry.makeGauge(descriptor: Self.databaseUp, labels: []).set(up ? 1.0 : 0.0)
        if up, let statuses = try? await store.projectionStatuses() {
            for status in statuses {
                let labels = [("projection", status.name)]
                registry.makeGauge(descriptor: Self.lagEvents, labels: labels).set(Double(status.lagEvents))
                registry.makeGauge(descriptor: Self.lagSeconds, labels: labels).set(status.lagSeconds)
                registry.makeGauge(descriptor: Self.parked, labels: labels).set(Double(status.parkedEvents))
            }
        }
        for (endpoint, count) in feeds.clientCounts {
            registry.makeGauge(descriptor: Self.webSocketClients, labels: [("endpoint", endpoint)]).set(Double(count))
        }
        if let redis {
            // Only ever up (a reset then an add could let a concurrent scrape read it low).
            let total = redis.errorCount
            let added = redisErrorsCounted.withLock { counted in
                defer { counted = max(counted, total) }
                return max(0, total - counted)
            }
            registry.makeCounter(descriptor: Self.redisErrors, labels: []).increment(by: Int64(added))
        }
        return registry.emitToBuffer()
    }
}

/// Counts every request in ``ServerMetrics``: outermost, so it sees the status the client gets
/// (errors included, as the error middleware answers them). The route is the router's template
/// (`/api/events/{event_id}`), `NotFound` when none matched: a label never holds a client's path.
struct MetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        let start = ContinuousClock.now
        let method = request.method.rawValue
        do {
            let response = try await next(request, context)
            metrics.request(
                method: method, endpoint: context.endpointPath ?? "NotFound", status: response.status.code,
                duration: start.duration(to: .now))
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            metrics.request(
                method: method, endpoint: context.endpointPath ?? "NotFound", status: status,
                duration: start.duration(to: .now))
            throw error
        }
    }
}
