import Domain
import EventStore
import Foundation
import Logging
import PostgresNIO
import Projections
import Redis

/// Redis keys of the analysis pipeline (the seeds' names), after an optional prefix
/// (`VIGIL_REDIS_PREFIX`) so several Vigils (or test runs) can share one Redis.
public struct AnalysisQueue: Sendable {
    public var prefix: String

    public init(prefix: String = "") { self.prefix = prefix }

    public var jobs: String { prefix + "analysis_queue" }
    /// Jobs a worker has taken and not finished; put back when a worker starts.
    public var processing: String { prefix + "analysis_queue:processing" }
    public var deadLetters: String { prefix + "dlq:analysis_queue" }
}

/// Publishes an analysis job on `analysis_queue` for every closed batch and every reanalysis
/// request, from the log.
///
/// A runner-driven reactor: the push happens inside the runner's transaction, so the
/// checkpoint moves only once Redis has the jobs. If Redis is down the batch fails and is
/// tried again; batches keep closing meanwhile, and their jobs are published when Redis is
/// back. A crash between the push and the commit publishes a job twice; the job id is derived
/// from the event that caused it, and the analysis of a job gets an id derived from the job,
/// so it is analyzed once. A closed batch that already has an analysis in the log (imported
/// history) gets no job.
public struct AnalysisPublisher: Projection {
    public let name = "analysis_publisher"
    public let filter = LogFilter(types: [SecurityEventClosed.type, ReanalysisRequested.type])
    public var isReactor: Bool { true }

    let redis: RedisClient
    let queue: AnalysisQueue
    let clock: @Sendable () -> Date

    public init(
        redis: RedisClient, queue: AnalysisQueue = AnalysisQueue(), clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.redis = redis
        self.queue = queue
        self.clock = clock
    }

    public func createTables(on connection: PostgresConnection, logger: Logger) async throws {}

    public func apply(_ events: [RecordedEvent], on connection: PostgresConnection, logger: Logger) async throws {
        guard !events.isEmpty else { return }
        var causes: [(event: RecordedEvent, id: Int64, reason: AnalysisJob.Reason?)] = []
        for event in events where !EventMetadata.isImported(event.metadata) {
            switch event.type {
            case SecurityEventClosed.type: causes.append((event, try SecurityEventClosed.decode(event.data).id, nil))
            case ReanalysisRequested.type:
                causes.append((event, try ReanalysisRequested.decode(event.data).id, .reanalysis))
            default: continue
            }
        }
        let histories = try await SecurityEventHistory.load(
            Set(causes.map(\.id)), on: connection, logger: logger)
        let now = clock()
        var jobs: [String] = []
        for cause in causes {
            guard let history = histories[cause.id], let opened = history.opened else { continue }
            // Imported history that arrived analyzed needs no job.
            if cause.reason == nil && history.analyzedAfter(cause.event.checkpoint) { continue }
            let reason = cause.reason ?? (opened.isFastPath ? .fastPath : .batchClosed)
            let job = AnalysisJob(
                jobId: DeterministicID.uuid("AnalysisJob", cause.event.id.uuidString), eventId: cause.id,
                cameraId: opened.cameraId, reason: reason, startedAt: opened.startedAt,
                endedAt: history.closed?.endedAt, detectionIds: history.closed?.detectionIds ?? opened.detectionIds,
                objectTypes: history.closed?.objectTypes ?? opened.objectTypes, enqueuedAt: now)
            jobs.append(try job.encoded())
        }
        guard !jobs.isEmpty else { return }
        _ = try await redis.lpush(queue.jobs, jobs)
        logger.debug("analysis jobs published", metadata: ["count": "\(jobs.count)"])
    }
}

/// What the log says about some security events: their opening, latest close, analyses.
struct SecurityEventHistory {
    var opened: SecurityEventOpened?
    var closed: SecurityEventClosed?
    var analyses: [Checkpoint] = []

    func analyzedAfter(_ checkpoint: Checkpoint) -> Bool { analyses.contains { $0 > checkpoint } }

    static func load(
        _ ids: Set<Int64>, on connection: PostgresConnection, logger: Logger
    ) async throws
        -> [Int64: SecurityEventHistory]
    {
        guard !ids.isEmpty else { return [:] }
        let types = [SecurityEventOpened.type, SecurityEventClosed.type, SecurityEventAnalyzed.type]
        let events = try await EventStoreTransaction(connection: connection, logger: logger).readStreams(
            ids.map(SecurityEvents.stream), types: types)
        var histories: [Int64: SecurityEventHistory] = [:]
        for event in events {
            switch event.type {
            case SecurityEventOpened.type:
                let opened = try SecurityEventOpened.decode(event.data)
                histories[opened.id, default: .init()].opened = opened
            case SecurityEventClosed.type:
                let closed = try SecurityEventClosed.decode(event.data)
                histories[closed.id, default: .init()].closed = closed
            default:
                let analyzed = try SecurityEventAnalyzed.decode(event.data)
                histories[analyzed.id, default: .init()].analyses.append(event.checkpoint)
            }
        }
        return histories
    }
}
