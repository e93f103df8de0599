import Domain
import EventStore
import Foundation
import HTTPTypes
import HummingbirdTesting
import Pipeline
import PostgresNIO
import Redis
import Testing
import VigilTesting

@testable import API

/// `/api/dlq/…` over a real Redis, through the real router: stats, listing, requeue, clear,
/// admin only, each change in the audit trail.
@Suite struct DeadLetterTests {
    static let root = AuthTests.root

    static func configure(prefix: String, analyzer: Bool) -> @Sendable (inout ServerConfiguration) -> Void {
        { configuration in
            PipelineTests.configure(prefix: prefix)(&configuration)
            configuration.adminKey = Self.root
            configuration.runHeuristicAnalyzer = analyzer
        }
    }

    /// A job for a security event that does not exist: every analysis of it fails.
    static func failingJob(_ n: Int) -> AnalysisJob {
        AnalysisJob(
            jobId: UUID(), eventId: Int64(900_000 + n), cameraId: "porch", reason: .batchClosed, startedAt: Date(),
            endedAt: nil, detectionIds: [Int64(n)], objectTypes: ["car"], enqueuedAt: Date())
    }

    @Test("Requeue-all takes the entries there when it starts, not those dead-lettered again meanwhile")
    func requeueAllTakesWhatIsThere() async throws {
        let prefix = PipelineTests.prefix()
        try await withApp(configure: Self.configure(prefix: prefix, analyzer: true)) { store, client in
            let redis = try PipelineTests.redis()
            defer { redis.shutdown() }
            defer {
                Task { [redis] in
                    _ = try? await redis.del(
                        DeadLetterQueues.known.map { prefix + $0.name } + [prefix + "analysis_queue"])
                }
            }
            // Not jobs at all: the running analyzer dead-letters each again as soon as it pops it.
            try await redis.lpush(prefix + "dlq:analysis_queue", ["not a job", "nor this"])
            let all = try json(try await client.call(.post, "/api/dlq/requeue-all/dlq:analysis_queue", key: Self.root))
            #expect(all["message"] as? String == "Requeued 2 jobs from dlq:analysis_queue to analysis_queue")
            try await waitUntil("the audit trail has the requeue") {
                try await IngestAPITests.count(store, type: DeadLettersRequeued.type) == 1
            }
            let rows = try await store.client.query(
                "SELECT (data->>'count')::int FROM events WHERE type = \(DeadLettersRequeued.type)",
                logger: store.logger)
            for try await count in rows.decode(Int.self) { #expect(count == 2) }
        }
    }

    @Test("Requeues at once take turns: every entry queued once, none left behind")
    func concurrentRequeues() async throws {
        let prefix = PipelineTests.prefix()
        let redis = try PipelineTests.redis()
        defer { redis.shutdown() }
        let queues = DeadLetterQueues(redis: redis, prefix: prefix)
        let queue = DeadLetterQueues.analysis
        let keys = [prefix + queue.name, prefix + queue.name + ":requeueing", prefix + queue.target]
        for round in 0..<3 {
            let entries = (0..<10).map { "entry-\(round)-\($0)" }
            try await redis.lpush(prefix + queue.name, entries)
            // Ten single requeues and two of everything, at once (the sweep's burst).
            let moved = try await withThrowingTaskGroup(of: Int.self) { group in
                for n in 0..<12 {
                    group.addTask { try await queues.requeue(queue, limit: n < 10 ? 1 : 10_000).count }
                }
                return try await group.reduce(0, +)
            }
            let queued = try await redis.lrange(prefix + queue.target, 0, -1)
            #expect(moved == 10, "round \(round)")
            #expect(queued.sorted() == entries.sorted(), "round \(round): \(queued)")
            #expect(try await queues.count(queue) == 0, "round \(round)")
            #expect(try await redis.get(prefix + queue.name + ":requeueing:lock") == nil, "round \(round)")
            _ = try await redis.del([prefix + queue.target])
        }
        _ = try await redis.del(keys)
    }

    @Test("Stats, pages oldest first, requeue one and all, clear: the lists, the queue and the audit trail agree")
    func lifecycle() async throws {
        let prefix = PipelineTests.prefix()
        try await withApp(configure: Self.configure(prefix: prefix, analyzer: false)) { store, client in
            let redis = try PipelineTests.redis()
            defer { redis.shutdown() }
            defer { Task { [redis] in _ = try? await redis.del(DeadLetterQueues.known.map { prefix + $0.name }) } }
            // Three analysis jobs dead-lettered in this order (LPUSH, as the worker does), and one
            // entry of another detector's list that is not a dead letter at all.
            var jobs: [AnalysisJob] = []
            for n in 0..<3 {
                var job = Self.failingJob(n)
                job.attempts = 3
                job.lastError = "failure \(n)"
                job.firstFailedAt = Date(timeIntervalSince1970: 1_790_000_000 + Double(n))
                jobs.append(job)
                let letter = DeadLetter(
                    job: try job.encoded(), error: "failure \(n)",
                    failedAt: Date(timeIntervalSince1970: 1_790_000_100 + Double(n)), worker: "heuristic-analyzer")
                try await redis.lpush(prefix + "dlq:analysis_queue", [try letter.encoded()])
            }
            try await redis.lpush(prefix + "dlq:detection_queue", [#"{"camera_id":"porch","file_path":"/x.jpg"}"#])

            let stats = try json(try await client.call(.get, "/api/dlq/stats", key: Self.root))
            #expect(stats["analysis_queue_count"] as? Int == 3)
            #expect(stats["detection_queue_count"] as? Int == 1)
            #expect(stats["total_count"] as? Int == 4)

            // Pages, oldest first.
            let first = try json(
                try await client.call(.get, "/api/dlq/jobs/dlq:analysis_queue?limit=2", key: Self.root))
            #expect(first["queue_name"] as? String == "dlq:analysis_queue")
            #expect(first["count"] as? Int == 2)
            let listed = try #require(first["jobs"] as? [[String: Any]])
            #expect(listed.map { $0["job_id"] as? String } == jobs.prefix(2).map { $0.jobId.uuidString.lowercased() })
            let oldest = listed[0]
            #expect((oldest["original_job"] as? [String: Any])?["event_id"] as? Int == 900_000)
            #expect(oldest["error"] as? String == "failure 0")
            #expect(oldest["attempt_count"] as? Int == 3)
            #expect(
                oldest["first_failed_at"] as? String
                    == EventCoding.timestamp(Date(timeIntervalSince1970: 1_790_000_000)))
            #expect(
                oldest["last_failed_at"] as? String == EventCoding.timestamp(Date(timeIntervalSince1970: 1_790_000_100))
            )
            #expect(oldest["queue_name"] as? String == "analysis_queue")
            let rest = try json(
                try await client.call(.get, "/api/dlq/jobs/analysis_queue?start=2&limit=100", key: Self.root))
            #expect(
                (rest["jobs"] as? [[String: Any]])?.map { $0["job_id"] as? String }
                    == [jobs[2].jobId.uuidString.lowercased()])
            let detection = try json(try await client.call(.get, "/api/dlq/jobs/dlq:detection_queue", key: Self.root))
            let raw = try #require((detection["jobs"] as? [[String: Any]])?.first)
            #expect((raw["original_job"] as? [String: Any])?["file_path"] as? String == "/x.jpg")
            #expect(raw["error"] is NSNull && raw["attempt_count"] is NSNull)

            // Requeue the oldest: it is the one back on the queue, with its attempts reset.
            let one = try json(try await client.call(.post, "/api/dlq/requeue/dlq:analysis_queue", key: Self.root))
            #expect(one["success"] as? Bool == true)
            #expect(one["message"] as? String == "Job requeued from dlq:analysis_queue to analysis_queue")
            #expect((one["job"] as? [String: Any])?["job_id"] as? String == jobs[0].jobId.uuidString.lowercased())
            let queued = try await redis.lrange(prefix + "analysis_queue", 0, -1)
            #expect(queued.count == 1)
            let requeued = try AnalysisJob.decode(try #require(queued.first))
            #expect(requeued.jobId == jobs[0].jobId && requeued.attempts == 0 && requeued.lastError == "failure 0")
            #expect(try await redis.llen(prefix + "dlq:analysis_queue") == 2)

            // Requeue the rest, in order; then there is nothing left to requeue.
            let all = try json(try await client.call(.post, "/api/dlq/requeue-all/dlq:analysis_queue", key: Self.root))
            #expect(all["success"] as? Bool == true)
            #expect(all["message"] as? String == "Requeued 2 jobs from dlq:analysis_queue to analysis_queue")
            #expect(all["job"] is NSNull)
            // The worker takes the tail: reversed, the list is the order the jobs run in.
            let order = try await redis.lrange(prefix + "analysis_queue", 0, -1).reversed()
            #expect(try order.map { try AnalysisJob.decode($0).jobId } == jobs.map(\.jobId))
            #expect(try await redis.llen(prefix + "dlq:analysis_queue") == 0)
            let none = try json(try await client.call(.post, "/api/dlq/requeue-all/dlq:analysis_queue", key: Self.root))
            #expect(none["success"] as? Bool == false)
            #expect(none["message"] as? String == "No jobs to requeue from dlq:analysis_queue")

            // Clear the other list.
            let cleared = try json(try await client.call(.delete, "/api/dlq/dlq:detection_queue", key: Self.root))
            #expect(cleared["success"] as? Bool == true)
            #expect(cleared["message"] as? String == "Cleared 1 jobs from dlq:detection_queue")
            let after = try json(try await client.call(.get, "/api/dlq/stats", key: Self.root))
            #expect(after["total_count"] as? Int == 0)

            // The trail: who requeued how many and which, who cleared what.
            let requeues = try await AuditTests.entries(client, "action=dlq_requeued", count: 2)
            #expect(requeues.map { ($0["details"] as? [String: Any])?["count"] as? Int } == [2, 1])  // newest first
            #expect(
                requeues.allSatisfy {
                    $0["actor"] as? String == "admin" && $0["resource_id"] as? String == "dlq:analysis_queue"
                })
            #expect(
                ((requeues[1]["details"] as? [String: Any])?["job_ids"] as? [String])
                    == [jobs[0].jobId.uuidString.lowercased()])
            let clears = try await AuditTests.entries(client, "action=dlq_cleared", count: 1)
            #expect((clears.first?["details"] as? [String: Any])?["count"] as? Int == 1)
            #expect(clears.first?["resource_type"] as? String == "dlq")
        }
    }

    @Test("Admin only (refusals in the trail), unknown queues are 404, bad pages 422, no Redis 503")
    func refusals() async throws {
        let prefix = PipelineTests.prefix()
        try await withApp(configure: Self.configure(prefix: prefix, analyzer: false)) { store, client in
            let viewer = try await client.issueKey("vera", role: .viewer, adminKey: Self.root)
            let worker = try await client.issueKey("belt", role: .worker, adminKey: Self.root)
            for key in [viewer, worker] {
                #expect(try await client.call(.get, "/api/dlq/stats", key: key).status == .forbidden)
                #expect(try await client.call(.get, "/api/dlq/jobs/dlq:analysis_queue", key: key).status == .forbidden)
                #expect(try await client.call(.delete, "/api/dlq/dlq:analysis_queue", key: key).status == .forbidden)
            }
            #expect(
                try await client.call(.post, "/api/dlq/requeue-all/dlq:analysis_queue", key: nil).status
                    == .unauthorized)
            let refused = try await AuditTests.entries(client, "action=dlq_cleared", count: 2)
            #expect(refused.allSatisfy { $0["status"] as? String == "failure" })

            let unknown = try await client.call(.post, "/api/dlq/requeue/dlq:nothing", key: Self.root)
            #expect(unknown.status == .notFound)
            #expect(
                (try json(unknown)["detail"] as? String)?.contains("dlq:analysis_queue, dlq:detection_queue") == true)
            #expect(try await client.call(.delete, "/api/dlq/nothing", key: Self.root).status == .notFound)
            for query in ["limit=0", "limit=1001", "start=-1", "limit=x"] {
                let response = try await client.call(.get, "/api/dlq/jobs/dlq:analysis_queue?\(query)", key: Self.root)
                #expect(response.status == .unprocessableContent, "\(query)")
            }
        }
        try await withApp(configure: { $0.adminKey = Self.root }) { _, client in
            let response = try await client.call(.get, "/api/dlq/stats", key: Self.root)
            #expect(response.status == .serviceUnavailable)
            #expect((try json(response)["detail"] as? String)?.hasPrefix("Redis is not configured") == true)
        }
    }

    @Test("A dead-lettered job requeued through the API runs again, its attempts counted from zero")
    func requeuedJobsRunAgain() async throws {
        let prefix = PipelineTests.prefix()
        try await withApp(configure: Self.configure(prefix: prefix, analyzer: true)) { _, client in
            let redis = try PipelineTests.redis()
            defer { redis.shutdown() }
            let job = Self.failingJob(7)
            try await redis.lpush(prefix + "analysis_queue", [try job.encoded()])
            func deadLetters() async throws -> [[String: Any]] {
                try json(try await client.call(.get, "/api/dlq/jobs/dlq:analysis_queue", key: Self.root))["jobs"]
                    as? [[String: Any]] ?? []
            }
            func settled() async throws -> Bool {
                let (queued, taken) = (
                    try await redis.llen(prefix + "analysis_queue"),
                    try await redis.llen(prefix + "analysis_queue:processing")
                )
                return queued == 0 && taken == 0
            }
            try await waitUntil("the job is dead-lettered") {
                let (count, idle) = (try await deadLetters().count, try await settled())
                return count == 1 && idle
            }
            let first = try #require(try await deadLetters().first)
            #expect(first["attempt_count"] as? Int == 3)

            let requeue = try await client.call(.post, "/api/dlq/requeue/dlq:analysis_queue", key: Self.root)
            #expect(requeue.status == .ok)
            // Taken again, failed three more times (not once: its attempts were reset), back.
            try await waitUntil("the requeued job is dead-lettered again") {
                let (count, idle) = (try await deadLetters().count, try await settled())
                return count == 1 && idle
            }
            let again = try #require(try await deadLetters().first)
            #expect(again["job_id"] as? String == job.jobId.uuidString.lowercased())
            #expect(again["attempt_count"] as? Int == 3)
            #expect(again["first_failed_at"] as? String == first["first_failed_at"] as? String)
            #expect((again["last_failed_at"] as? String ?? "") > (first["last_failed_at"] as? String ?? "~"))
            _ = try await redis.del([prefix + "dlq:analysis_queue"])
        }
    }
}
