import API
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Pipeline
import PostgresNIO
import Projections
import Redis
import Synthetic
import Testing
import VigilTesting

/// Detections → batches → jobs on Redis → analyses, with the real aggregator, a real Redis
/// and the built-in heuristic analyzer.
@Suite struct PipelineTests {
    /// Short batches so tests don't wait 30 s; each test has its own Redis keys.
    static func configure(prefix: String, redis: Bool = true) -> @Sendable (inout ServerConfiguration) -> Void {
        { configuration in
            configuration.settings.config.batchIdleTimeoutSeconds = 2
            configuration.settings.config.batchWindowSeconds = 60
            if redis { configuration.redis = sharedRedisSettings() }
            configuration.redisPrefix = prefix
            configuration.analyzerOptions = .init(maxAttempts: 3, poll: 0.2, redisRetry: .milliseconds(100))
        }
    }

    static func prefix() -> String { "test-\(UUID().uuidString.prefix(8)):" }

    static func redis() throws -> RedisClient {
        RedisClient(settings: try #require(sharedRedisSettings()))
    }

    /// All security events (the read model), by id.
    static func events(_ client: any TestClientProtocol) async throws -> [[String: Any]] {
        try #require(try await client.getJSON("/api/events?limit=100")["events"] as? [[String: Any]])
    }

    /// Every `SecurityEventClosed` in the log, in log order, with where and when it was written.
    static func closes(
        _ store: EventStore
    ) async throws
        -> [(id: Int64, detections: [Int64], checkpoint: Checkpoint, recordedAt: Date)]
    {
        let rows = try await store.client.query(
            """
            SELECT data::text, tx_id::text, position, recorded_at FROM events
            WHERE type = 'SecurityEventClosed' ORDER BY tx_id, position
            """, logger: store.logger)
        var closes: [(Int64, [Int64], Checkpoint, Date)] = []
        for try await (data, transaction, position, recordedAt) in rows.decode((String, String, Int64, Date).self) {
            let closed = try SecurityEventClosed.decode(data)
            closes.append(
                (
                    closed.id, closed.detectionIds, Checkpoint(transactionText: transaction, position: position),
                    recordedAt
                ))
        }
        return closes
    }

    /// The status of one projection (its checkpoint, `last_error`, last update).
    static func status(_ store: EventStore, _ name: String) async throws -> ProjectionStatus {
        try #require(try await store.projectionStatuses().first { $0.name == name })
    }

    /// Batches the aggregator holds open (its `open_batches`, committed with its checkpoint).
    static func openBatches(_ store: EventStore) async throws -> Int {
        let rows = try await store.client.query("SELECT count(*) FROM open_batches", logger: store.logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return -1
    }

    @Test func detectionsBecomeAnalyzedEventsThroughRedis() async throws {
        let prefix = Self.prefix()
        try await withApp(configure: Self.configure(prefix: prefix)) { store, client in
            try await IngestAPITests.register(client, "porch")
            try await IngestAPITests.register(client, "garage")
            let batch =
                "[\(IngestAPITests.detection(object: "car")), \(IngestAPITests.detection(object: "dog")), "
                + "\(IngestAPITests.detection(camera: "garage", object: "bicycle"))]"
            #expect(try await client.send(.post, "/api/detections/batch", json: batch).status == .created)
            // A high-confidence person takes the fast path: an event of its own at once.
            let fast = try await client.send(
                .post, "/api/detections", json: IngestAPITests.detection(object: "person", confidence: 0.95))
            #expect(fast.status == .created)

            // Two batches (porch: car+dog, garage: bicycle) close after 2 s idle; with the fast
            // path that is three events, all analyzed by the heuristic analyzer.
            try await waitUntil("three analyzed events") {
                let events = try await Self.events(client)
                return events.count == 3 && events.allSatisfy { $0["risk_score"] is Int }
            }
            let events = try await Self.events(client)
            let porch = try #require(
                events.first { ($0["camera_id"] as? String) == "porch" && ($0["is_fast_path"] as? Bool) != true })
            #expect(Set(porch["object_types"] as? [String] ?? []) == ["car", "dog"])
            #expect(porch["risk_level"] is String)
            #expect((porch["summary"] as? String)?.isEmpty == false)
            let fastEvent = try #require(events.first { ($0["is_fast_path"] as? Bool) == true })
            #expect(fastEvent["object_types"] as? [String] == ["person"])

            // Reanalysis: a second analysis joins the history; the first stays.
            let id = try #require(porch["id"] as? Int)
            let requested = try await client.send(.post, "/api/events/\(id)/reanalyse")
            #expect(requested.status == .accepted)
            try await waitUntil("two analyses of event \(id)") {
                try await client.getJSON("/api/events/\(id)/analyses")["count"] as? Int == 2
            }
            let history = try #require(
                try await client.getJSON("/api/events/\(id)/analyses")["analyses"] as? [[String: Any]])
            #expect(history.allSatisfy { $0["actor"] as? String == "heuristic-analyzer" })
            #expect(try await client.send(.post, "/api/events/999999/reanalyse").status == .notFound)

            // The queue is drained; nothing went to the dead letters.
            let redis = try Self.redis()
            defer { redis.shutdown() }
            #expect(try await redis.llen(prefix + "analysis_queue") == 0)
            #expect(try await redis.llen(prefix + "dlq:analysis_queue") == 0)
            _ = try await redis.del([prefix + "analysis_queue", prefix + "analysis_queue:processing"])
        }
    }

    /// A job Redis lost (a Redis without persistence that restarted) is published again once
    /// its analysis is overdue, until an analysis settles it, and at most three times.
    @Test func aJobRedisLostIsPublishedAgainUntilAnalyzedAtMostThreeTimes() async throws {
        let prefix = Self.prefix()
        let queue = AnalysisQueue(prefix: prefix)
        let configure = Self.configure(prefix: prefix)
        try await withApp(configure: {
            configure(&$0)
            $0.runHeuristicAnalyzer = false
            // Long enough that a loaded machine sees each state between two pushes.
            $0.analysisTimeout = .seconds(3)
        }) { store, client in
            let redis = try Self.redis()
            defer { redis.shutdown() }
            func waiting() async throws -> [(event: Int64, republished: Int32)] {
                let rows = try await store.client.query(
                    """
                    SELECT event_id, republished FROM projection_analysis_publisher_1.analysis_jobs
                    ORDER BY event_id
                    """, logger: store.logger)
                var jobs: [(Int64, Int32)] = []
                for try await row in rows.decode((Int64, Int32).self) { jobs.append(row) }
                return jobs
            }
            /// A sweep ran after every waiting job was overdue: the publisher's checkpoint row
            /// moved (a heartbeat) more than the timeout after `since`.
            func sweptSince(_ since: Date) async throws {
                try await waitUntil("a sweep after \(since)") {
                    try await Self.status(store, "analysis_publisher").updatedAt > since.addingTimeInterval(3.5)
                }
            }

            try await IngestAPITests.register(client, "porch")
            #expect(
                try await client.send(.post, "/api/detections", json: IngestAPITests.detection()).status == .created)
            try await waitUntil("the batch's job is queued") { try await redis.llen(queue.jobs) == 1 }
            // The job is pushed inside the publisher's transaction: its row commits just after.
            try await waitUntil("the job waits for its analysis") { try await waiting().map(\.republished) == [0] }

            // Lost: published again once overdue.
            _ = try await redis.del([queue.jobs])
            try await waitUntil("the lost job is published again") { try await redis.llen(queue.jobs) == 1 }
            try await waitUntil("counted once") { try await waiting().map(\.republished) == [1] }

            // An analyzer takes it: the analysis settles the job, nothing is published again.
            let worker = HeuristicAnalyzerWorker(
                redis: redis, queue: queue, store: store, options: .init(maxAttempts: 1, poll: 0.2))
            #expect(try await worker.processNext())
            try await waitUntil("the analysis settles the job") { try await waiting().isEmpty }
            // Pushes are committed with the job's row: once the analysis has removed it, none
            // follows (a slow analyzer may have let one more copy out before; that is allowed).
            let queued = try await redis.llen(queue.jobs)
            let settled = Date()
            try await sweptSince(settled)
            #expect(try await redis.llen(queue.jobs) == queued)
            _ = try await redis.del([queue.jobs])

            // Lost for good: published again three times, then given up on (and still listed).
            try await IngestAPITests.register(client, "garage")
            #expect(
                try await client.send(.post, "/api/detections", json: IngestAPITests.detection(camera: "garage"))
                    .status == .created)
            try await waitUntil("the second batch's job is queued") { try await redis.llen(queue.jobs) == 1 }
            for time in 1...3 {
                _ = try await redis.del([queue.jobs])
                try await waitUntil("published again (\(time))") { try await redis.llen(queue.jobs) == 1 }
                try await waitUntil("counted \(time) times") { try await waiting().map(\.republished) == [Int32(time)] }
            }
            _ = try await redis.del([queue.jobs])
            let lost = Date()
            try await sweptSince(lost)
            #expect(try await redis.llen(queue.jobs) == 0)
            #expect(try await waiting().map(\.republished) == [3])
            #expect(try await Self.status(store, "analysis_publisher").lastError == nil)
            _ = try await redis.del([queue.jobs, queue.processing])
        }
    }

    @Test func aJobThatKeepsFailingGoesToTheDeadLetters() async throws {
        let prefix = Self.prefix()
        try await withApp(configure: Self.configure(prefix: prefix)) { store, client in
            let redis = try Self.redis()
            defer { redis.shutdown() }
            // A job for an event that doesn't exist fails every time.
            let job = AnalysisJob(
                jobId: UUID(), eventId: 424_242, cameraId: "porch", reason: .batchClosed, startedAt: Date(),
                endedAt: nil, detectionIds: [1], objectTypes: ["car"], enqueuedAt: Date())
            _ = try await redis.lpush(prefix + "analysis_queue", [try job.encoded()])
            // The worker dead-letters it, then takes it off its processing list (two commands).
            try await waitUntil("the job is dead-lettered and off the processing list") {
                let (dead, processing) = (
                    try await redis.llen(prefix + "dlq:analysis_queue"),
                    try await redis.llen(prefix + "analysis_queue:processing")
                )
                return dead == 1 && processing == 0
            }
            let letter = try DeadLetter.decode(
                try #require(try await redis.lrange(prefix + "dlq:analysis_queue", 0, 0).first))
            let failed = try AnalysisJob.decode(letter.job)
            #expect(failed.jobId == job.jobId)
            #expect(failed.attempts == 3)
            #expect(letter.error.contains("424242 does not exist"))
            #expect(try await redis.llen(prefix + "analysis_queue") == 0)
            #expect(try await redis.llen(prefix + "analysis_queue:processing") == 0)
            _ = try await redis.del([prefix + "dlq:analysis_queue"])
        }
    }

    /// Redis is down: batches still close; when it is back, their jobs are published and analyzed.
    @Test func batchesCloseWhileRedisIsDownAndTheirJobsFollowWhenItIsBack() async throws {
        let port = TestRedisServer.freePort()
        let prefix = Self.prefix()
        let configure = Self.configure(prefix: prefix)
        try await withApp(configure: {
            configure(&$0)
            $0.redis = RedisSettings(host: "127.0.0.1", port: port)
        }) { store, client in
            try await IngestAPITests.register(client, "porch")
            // One request: a loaded machine can't spread them over two batches.
            let batch = "[\(IngestAPITests.detection(object: "car")), \(IngestAPITests.detection(object: "package"))]"
            #expect(try await client.send(.post, "/api/detections/batch", json: batch).status == .created)
            try await waitUntil("the batch closed without Redis") {
                let events = try await Self.events(client)
                return events.count == 1 && events[0]["ended_at"] is String
            }
            // Not analyzed because the publisher can't publish: it reports the failure and its
            // checkpoint stays before the close (the job is not lost, it waits in the log).
            let close = try #require(try await Self.closes(store).first)
            try await waitUntil("the publisher reports Redis down") {
                try await Self.status(store, "analysis_publisher").lastError != nil
            }
            #expect(try await Self.status(store, "analysis_publisher").checkpoint < close.checkpoint)
            #expect(try await Self.events(client).first?["risk_score"] is NSNull)

            let redis = try TestRedisServer(port: port)
            defer { redis.stop() }
            try await waitUntil("the job was published and analyzed") {
                try await Self.events(client).first?["risk_score"] is Int
            }
            // Settled: the publisher is past the close without an error, and the queue and the
            // worker's processing list are empty, so no second job is on its way.
            let queue = AnalysisQueue(prefix: prefix)
            let client2 = RedisClient(host: "127.0.0.1", port: port)
            defer { client2.shutdown() }
            try await waitUntil("the pipeline is drained") {
                let publisher = try await Self.status(store, "analysis_publisher")
                guard publisher.lastError == nil, publisher.checkpoint >= close.checkpoint else { return false }
                let queued = try await client2.llen(queue.jobs)
                let taken = try await client2.llen(queue.processing)
                return queued == 0 && taken == 0
            }
            let id = try #require(try await Self.events(client).first?["id"] as? Int)
            #expect(try await client.getJSON("/api/events/\(id)/analyses")["count"] as? Int == 1)
            #expect(try await client2.llen(queue.deadLetters) == 0)
        }
    }

    @Test func analyzersPostResultsOnce() async throws {
        try await withApp(configure: Self.configure(prefix: Self.prefix(), redis: false)) { store, client in
            try await store.appendSynthetic(
                SyntheticHistory(start: Date(timeIntervalSince1970: 1_795_000_000)), events: 0..<2)
            try await client.waitForEvents(2)
            let job = UUID().uuidString
            let body =
                #"{"risk_score": 91, "summary": "Person at the back door", "reasoning": "night", "model": "llava", "latency_ms": 1200, "job_id": "\#(job)"}"#
            let first = try await client.send(.post, "/api/events/1/analysis", json: body)
            #expect(first.status == .created)
            #expect(try json(first)["risk_level"] as? String == "critical")
            #expect(try await client.send(.post, "/api/events/1/analysis", json: body).status == .ok)
            // The same job answered again with another result: the first one, as the log holds it.
            let second = #"{"risk_score": 20, "summary": "Just a cat", "job_id": "\#(job)"}"#
            let again = try await client.send(.post, "/api/events/1/analysis", json: second)
            #expect(again.status == .ok)
            #expect(try json(again)["risk_score"] as? Int == 91)
            #expect(try json(again)["risk_level"] as? String == "critical")
            #expect(try json(again)["summary"] as? String == "Person at the back door")
            #expect(try json(again)["model"] as? String == "llava")
            let event = try await client.getEventually("/api/events/1") { $0["risk_score"] as? Int == 91 }
            #expect(event["risk_score"] as? Int == 91)
            #expect(try await client.getJSON("/api/events/1/analyses")["count"] as? Int == 2)  // synthetic + this
            let invalid = try await client.send(.post, "/api/events/1/analysis", json: #"{"risk_score": 101}"#)
            #expect(invalid.status == .unprocessableContent)
            // A reactor's output is in the log: it is never rebuilt.
            #expect(try await client.send(.post, "/api/projections/batch_aggregator/rebuild").status == .conflict)
            let other = #"{"risk_score": 10, "summary": "Cat"}"#
            #expect(try await client.send(.post, "/api/events/77/analysis", json: other).status == .notFound)
            // A job's result belongs to the job's event.
            #expect(try await client.send(.post, "/api/events/2/analysis", json: body).status == .conflict)
        }
    }
}
