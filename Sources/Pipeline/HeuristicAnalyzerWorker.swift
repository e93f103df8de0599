import Domain
import EventStore
import Foundation
import Logging
import Projections
import Redis
import ServiceLifecycle

/// Vigil's built-in analyzer worker: takes jobs from `analysis_queue` like an external LLM
/// worker would, scores them with ``HeuristicAnalyzer``, and appends `SecurityEventAnalyzed`.
///
/// A job is moved to `analysis_queue:processing` while it runs (a worker that dies leaves it
/// there; the next worker to start puts it back). A job that fails is queued again with its
/// attempt count; after `maxAttempts` it goes to `dlq:analysis_queue` with its last error.
public struct HeuristicAnalyzerWorker: Service {
    public struct Options: Sendable {
        public var maxAttempts: Int
        /// How long one wait for a job blocks (also how quickly the worker notices shutdown).
        public var poll: Double
        /// Wait after Redis failed before trying again.
        public var redisRetry: Duration

        public init(maxAttempts: Int = 3, poll: Double = 1, redisRetry: Duration = .seconds(1)) {
            self.maxAttempts = maxAttempts
            self.poll = poll
            self.redisRetry = redisRetry
        }
    }

    let redis: RedisClient
    let queue: AnalysisQueue
    let store: EventStore
    let options: Options
    let name: String

    public init(
        redis: RedisClient, queue: AnalysisQueue = AnalysisQueue(), store: EventStore, options: Options = Options(),
        name: String = SystemActor.heuristicAnalyzer
    ) {
        self.redis = redis
        self.queue = queue
        self.store = store
        self.options = options
        self.name = name
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var recovered = false
            while !Task.isCancelled {
                do {
                    if !recovered {
                        try await recoverAbandonedJobs()
                        recovered = true
                    }
                    try await processNext()
                } catch {
                    if Task.isCancelled { break }
                    store.logger.warning("analyzer: redis unavailable", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: options.redisRetry)
                }
            }
        }
    }

    /// Puts jobs a dead worker left in `processing` back on the queue.
    func recoverAbandonedJobs() async throws {
        while try await redis.lmove(queue.processing, queue.jobs) != nil {}
    }

    /// Waits for one job (up to the poll time) and handles it. Returns whether there was one.
    @discardableResult
    public func processNext() async throws -> Bool {
        guard let raw = try await redis.blmove(queue.jobs, queue.processing, timeout: options.poll)
        else { return false }
        var job: AnalysisJob
        do {
            job = try AnalysisJob.decode(raw)
        } catch {
            // Not a job at all: straight to the dead letters, as it was.
            try await deadLetter(raw: raw, error: "not an analysis job: \(error)")
            _ = try await redis.lrem(queue.processing, 1, raw)
            return true
        }
        do {
            try await analyze(job)
        } catch {
            job.attempts += 1
            job.lastError = "\(error)"
            job.firstFailedAt = job.firstFailedAt ?? Date()
            if job.attempts >= options.maxAttempts {
                try await deadLetter(raw: try job.encoded(), error: "\(error)")
                store.logger.warning(
                    "analysis job dead-lettered",
                    metadata: ["job": "\(job.jobId)", "event": "\(job.eventId)", "error": "\(error)"])
            } else {
                _ = try await redis.lpush(queue.jobs, [try job.encoded()])
            }
        }
        _ = try await redis.lrem(queue.processing, 1, raw)
        return true
    }

    func analyze(_ job: AnalysisJob) async throws {
        let started = ContinuousClock.now
        guard try await store.readStream(SecurityEvents.stream(job.eventId), limit: 1) != nil else {
            throw AnalysisFailure.noSuchEvent(job.eventId)
        }
        let result = HeuristicAnalyzer.analyze(
            objectTypes: job.objectTypes, detectionCount: job.detectionIds.count, startedAt: job.startedAt,
            isFastPath: job.reason == .fastPath)
        let elapsed = ContinuousClock.now - started
        let analyzed = SecurityEventAnalyzed(
            id: job.eventId, riskScore: result.riskScore, summary: result.summary, reasoning: result.reasoning,
            model: HeuristicAnalyzer.model,
            latencyMs: Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000))
        let metadata = EventMetadata(actor: name, correlationId: job.jobId.uuidString)
        try await store.append(
            to: analyzed.stream, events: [try NewEvent(analyzed, id: job.analysisEventID, metadata: metadata)])
    }

    private func deadLetter(raw: String, error: String) async throws {
        let letter = DeadLetter(job: raw, error: error, failedAt: Date(), worker: name)
        _ = try await redis.lpush(queue.deadLetters, [try letter.encoded()])
    }
}

/// An entry of a dead-letter list: the job as it was, why it failed, when, and who gave up.
public struct DeadLetter: Codable, Sendable {
    public var job: String
    public var error: String
    public var failedAt: Date
    public var worker: String

    public init(job: String, error: String, failedAt: Date, worker: String) {
        self.job = job
        self.error = error
        self.failedAt = failedAt
        self.worker = worker
    }

    public func encoded() throws -> String { String(decoding: try EventCoding.encoder.encode(self), as: UTF8.self) }
    public static func decode(_ text: String) throws -> DeadLetter {
        try EventCoding.decoder.decode(DeadLetter.self, from: Data(text.utf8))
    }

    enum CodingKeys: String, CodingKey {
        case job, error, worker
        case failedAt = "failed_at"
    }
}

enum AnalysisFailure: Error, CustomStringConvertible {
    case noSuchEvent(Int64)

    var description: String {
        switch self {
        case .noSuchEvent(let id): "security event \(id) does not exist"
        }
    }
}
