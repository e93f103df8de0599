import EventStore
import Foundation
import Logging
import NIOCore
import Pipeline
import Projections
import Redis
import ServiceLifecycle
import Synchronization

/// `{"type": "system_status", "data": {…}, "timestamp": …}` every `interval` (5 s) to the sockets
/// of `/ws/system` and of the `system` channel of `/ws/events` (through the ``EventsFeed``):
/// computed once per process per tick, and only while such a socket is open. A socket gets the
/// latest status as soon as it opens.
///
/// `data`:
/// - `gpu`: the seed's GPU fields, null: no worker reports them yet;
/// - `cameras {active, total}`: registered cameras, and those `online`;
/// - `queue {pending, processing}`: the analysis queue in Redis (null without Redis, or when it
///   did not answer within a second);
/// - `health`: `healthy`; `degraded` (a projection not fine, Redis not answering); `unhealthy`
///   (PostgreSQL not answering: cameras and projections are then null);
/// - `projections {lag_events, lag_seconds, unhealthy}`: the largest lag of any projection, and
///   the names of those not fine (as on `/ready`).
final class SystemStatusFeed: Service, Sendable {
    static let gpuFields = [
        "gpu_name", "utilization", "memory_used", "memory_total", "temperature", "power_usage", "inference_fps",
    ]

    private let feed: EventsFeed
    private let store: EventStore
    private let cameras: CamerasReadModel
    private let redis: RedisClient?
    private let queue: AnalysisQueue
    private let availability: DatabaseAvailability
    private let limiter: RateLimiter?
    let interval: Duration
    private let latest = Mutex<(message: ByteBuffer, at: ContinuousClock.Instant)?>(nil)

    init(
        feed: EventsFeed, store: EventStore, cameras: CamerasReadModel, redis: RedisClient?, queue: AnalysisQueue,
        availability: DatabaseAvailability, limiter: RateLimiter?, interval: Duration
    ) {
        self.feed = feed
        self.store = store
        self.cameras = cameras
        self.redis = redis
        self.queue = queue
        self.availability = availability
        self.limiter = limiter
        self.interval = interval
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                if self.feed.hasSubscribers(on: .system) { self.feed.publish(await self.fresh(), on: .system) }
                try? await Task.sleep(for: self.interval)
            }
        }
    }

    /// The latest status, computed now if the last one is older than half the interval.
    func current() async -> ByteBuffer {
        if let latest = latest.withLock({ $0 }), ContinuousClock.now - latest.at < interval / 2 {
            return latest.message
        }
        return await fresh()
    }

    private func fresh() async -> ByteBuffer {
        let message = await compute()
        latest.withLock { $0 = (message, .now) }
        return message
    }

    /// The status now. Every part is bounded: a database that is down makes it `unhealthy` at
    /// once (``DatabaseAvailability/untilDown(_:)``), a Redis that does not answer costs a second.
    func compute() async -> ByteBuffer {
        let database = try? await availability.untilDown {
            (try await cameras.counts(), try await store.projectionStatuses())
        }
        var pending: Int64?
        var processing: Int64?
        if let redis {
            do {
                pending = try await redis.send(["LLEN", queue.jobs], within: .seconds(1)).integer
                processing = try await redis.send(["LLEN", queue.processing], within: .seconds(1)).integer
            } catch {
                (pending, processing) = (nil, nil)
            }
        }
        let summary = database.map { HealthSummary($0.1, limiter: limiter) }
        let health = HealthSummary.status(summary, redisAnswers: redis == nil || pending != nil)
        var writer = JSONWriter()
        writer.object { object in
            object.field("type", "system_status")
            object.object("data") { data in
                data.object("gpu") { gpu in for name in Self.gpuFields { gpu.field(name, nil as String?) } }
                if let (counts, _) = database {
                    data.object("cameras") {
                        $0.field("active", Int64(counts.active))
                        $0.field("total", Int64(counts.total))
                    }
                } else {
                    data.field("cameras", nil as String?)
                }
                if let pending, let processing {
                    data.object("queue") {
                        $0.field("pending", pending)
                        $0.field("processing", processing)
                    }
                } else {
                    data.field("queue", nil as String?)
                }
                data.field("health", health)
                if let (_, statuses) = database, let summary {
                    data.object("projections") { projections in
                        projections.field("lag_events", statuses.map(\.lagEvents).max() ?? 0)
                        projections.field("lag_seconds", statuses.map(\.lagSeconds).max() ?? 0)
                        projections.array("unhealthy") { array in
                            for status in summary.unhealthy { array.string(status.name) }
                        }
                    }
                } else {
                    data.field("projections", nil as String?)
                }
            }
            object.field("timestamp", JSONWriter.microseconds(Date()))
        }
        return writer.buffer
    }
}
