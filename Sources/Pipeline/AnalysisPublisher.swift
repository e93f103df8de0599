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
///
/// **A job Redis lost is published again.** Each published job waits in `analysis_jobs` (in the
/// runner's transaction) until an analysis of its event follows it in the log. A job still
/// waiting after `analysisTimeout` is pushed again, at most `maxRepublish` times (a Redis
/// without persistence that restarted, a queue flushed by hand; or a job that keeps failing and
/// lands in the dead letters each time). The job id is the same, so an analyzer that did get
/// the first copy records one analysis.
public struct AnalysisPublisher: Projection {
    public let name = "analysis_publisher"
    public let filter = LogFilter(types: [
        SecurityEventClosed.type, ReanalysisRequested.type, SecurityEventAnalyzed.type,
    ])
    public var isReactor: Bool { true }
    /// The sweep for lost jobs runs on a quiet log too.
    public var heartbeat: Duration? { min(.seconds(5), analysisTimeout) }

    let redis: RedisClient
    let queue: AnalysisQueue
    let clock: @Sendable () -> Date
    /// How long a published job may wait for its analysis before it is published again.
    let analysisTimeout: Duration
    let maxRepublish: Int

    public init(
        redis: RedisClient, queue: AnalysisQueue = AnalysisQueue(), clock: @escaping @Sendable () -> Date = { Date() },
        analysisTimeout: Duration = .seconds(600), maxRepublish: Int = 3
    ) {
        self.redis = redis
        self.queue = queue
        self.clock = clock
        self.analysisTimeout = analysisTimeout
        self.maxRepublish = maxRepublish
    }

    public func createTables(on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS analysis_jobs (
                job_id uuid PRIMARY KEY,
                event_id bigint NOT NULL,
                job text NOT NULL,
                published_at timestamptz NOT NULL,
                republished int NOT NULL DEFAULT 0
            )
            """, logger: logger)
        try await connection.query(
            "CREATE INDEX IF NOT EXISTS analysis_jobs_event ON analysis_jobs (event_id)", logger: logger)
    }

    public func apply(_ events: [RecordedEvent], on connection: PostgresConnection, logger: Logger) async throws {
        let now = clock()
        var jobs = try await publish(events, on: connection, logger: logger, now: now)
        jobs += try await republish(on: connection, logger: logger, now: now)
        guard !jobs.isEmpty else { return }
        _ = try await redis.lpush(queue.jobs, jobs)
        logger.debug("analysis jobs published", metadata: ["count": "\(jobs.count)"])
    }

    /// The jobs of `events` (recorded in `analysis_jobs`), and the analyses among them settle
    /// the jobs published before them.
    private func publish(
        _ events: [RecordedEvent], on connection: PostgresConnection, logger: Logger, now: Date
    ) async throws -> [String] {
        var causes: [(event: RecordedEvent, id: Int64, reason: AnalysisJob.Reason?)] = []
        var analyzed: [(event: RecordedEvent, id: Int64)] = []
        for event in events where !EventMetadata.isImported(event.metadata) {
            switch event.type {
            case SecurityEventClosed.type: causes.append((event, try SecurityEventClosed.decode(event.data).id, nil))
            case ReanalysisRequested.type:
                causes.append((event, try ReanalysisRequested.decode(event.data).id, .reanalysis))
            case SecurityEventAnalyzed.type: analyzed.append((event, try SecurityEventAnalyzed.decode(event.data).id))
            default: continue
            }
        }
        // Analyses settle every job of their event published before them (all earlier pages').
        if !analyzed.isEmpty {
            try await connection.query(
                "DELETE FROM analysis_jobs WHERE event_id = ANY(\(analyzed.map(\.id)))", logger: logger)
        }
        let histories = try await SecurityEventHistory.load(
            Set(causes.map(\.id)), on: connection, logger: logger)
        var jobs: [String] = []
        var waiting: (ids: [UUID], events: [Int64], jobs: [String]) = ([], [], [])
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
            let encoded = try job.encoded()
            jobs.append(encoded)
            // Settled already by an analysis later in this page: nothing to wait for.
            if analyzed.contains(where: { $0.id == cause.id && $0.event.checkpoint > cause.event.checkpoint }) {
                continue
            }
            waiting.ids.append(job.jobId)
            waiting.events.append(job.eventId)
            waiting.jobs.append(encoded)
        }
        if !waiting.ids.isEmpty {
            try await connection.query(
                """
                INSERT INTO analysis_jobs (job_id, event_id, job, published_at)
                SELECT * FROM unnest(\(waiting.ids)::uuid[], \(waiting.events)::int8[], \(waiting.jobs)::text[]),
                     (SELECT \(now)::timestamptz) AS t(published_at)
                ON CONFLICT (job_id) DO NOTHING
                """, logger: logger)
        }
        return jobs
    }

    /// Jobs published longer than `analysisTimeout` ago without an analysis since: published
    /// again (their time starts over), oldest first, a bounded number per batch.
    private func republish(on connection: PostgresConnection, logger: Logger, now: Date) async throws -> [String] {
        let cutoff = now.addingTimeInterval(-Double(analysisTimeout.components.seconds))
        let rows = try await connection.query(
            """
            UPDATE analysis_jobs SET published_at = \(now), republished = republished + 1
            WHERE job_id IN (
                SELECT job_id FROM analysis_jobs
                WHERE published_at < \(cutoff) AND republished < \(maxRepublish)
                ORDER BY published_at LIMIT 100)
            RETURNING event_id, job, republished
            """, logger: logger)
        var jobs: [String] = []
        for try await (event, job, count) in rows.decode((Int64, String, Int32).self) {
            jobs.append(job)
            logger.warning(
                "analysis job published again: no analysis since it was published",
                metadata: [
                    "event": "\(event)", "time": "\(count) of \(maxRepublish)",
                    "waited": "\(analysisTimeout)",
                ])
        }
        return jobs
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
