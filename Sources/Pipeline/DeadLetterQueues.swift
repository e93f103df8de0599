import Domain
import Foundation
import Redis

/// The dead-letter lists of the job queues (the seeds' `dlq:analysis_queue` and
/// `dlq:detection_queue`), as an operator sees them: count, look at, requeue, clear.
///
/// A list is filled with `LPUSH` (``HeuristicAnalyzerWorker``), so its oldest entry is its
/// last. A requeue claims entries oldest first by moving them (atomically, `LMOVE`) to a
/// `…:requeueing` list, pushes each one's job back on its queue with its attempts reset, then
/// drops it from `…:requeueing`. An entry claimed by a requeue that stopped half-way is pushed by
/// the next one: a job may be queued twice, never lost (an analysis's id derives from its job's,
/// so a job analyzed twice is recorded once). Requeues of one list take turns (a lock in Redis).
public struct DeadLetterQueues: Sendable {
    /// One dead-letter list and the queue its jobs go back to.
    public struct Queue: Sendable, Hashable {
        /// The API's name: `dlq:analysis_queue`.
        public let name: String
        /// `analysis_queue`.
        public let target: String
    }

    public static let analysis = Queue(name: "dlq:analysis_queue", target: "analysis_queue")
    /// No Vigil worker takes detection jobs (detections arrive over HTTP); an external
    /// detector may use the seed's names, and its dead letters are handled the same way.
    public static let detection = Queue(name: "dlq:detection_queue", target: "detection_queue")
    public static let known = [analysis, detection]

    /// The queue named `name` (`dlq:analysis_queue`, or `analysis_queue`), nil when unknown.
    public static func named(_ name: String) -> Queue? {
        known.first { $0.name == name || $0.target == name }
    }

    /// The most a requeue-all moves in one call (the seed's iteration limit).
    public static let requeueLimit = 10_000

    let redis: RedisClient
    let prefix: String

    public init(redis: RedisClient, prefix: String = "") {
        self.redis = redis
        self.prefix = prefix
    }

    func key(_ queue: Queue) -> String { prefix + queue.name }
    func claimed(_ queue: Queue) -> String { prefix + queue.name + ":requeueing" }

    /// Entries waiting in `queue`'s list (those a requeue has claimed included).
    public func count(_ queue: Queue) async throws -> Int {
        try await redis.llen(key(queue)) + redis.llen(claimed(queue))
    }

    /// Up to `limit` entries, oldest first, from the `start`th oldest on.
    public func entries(_ queue: Queue, start: Int, limit: Int) async throws -> [DeadLetterEntry] {
        guard limit > 0 else { return [] }
        let raw = try await redis.lrange(key(queue), -(start + limit), -(start + 1))
        return raw.reversed().map(DeadLetterEntry.init(raw:))
    }

    /// Moves up to `limit` entries, oldest first, back to their queue; returns them. Only those
    /// in the list when it starts: a job that fails again at once (a worker is running) and is
    /// dead-lettered while this goes on waits for the next requeue, instead of being moved
    /// round and round and counted each time (a list of 2 was "2500 jobs" requeued).
    ///
    /// One requeue of a list runs at a time, across processes (``withRequeueLock(_:_:)``): the
    /// entries another requeue has claimed and not yet dropped look exactly like an interrupted
    /// one's, and two running at once pushed each other's (one job queued up to six times by ten
    /// concurrent requeues, and entries left behind: session 47's sweep).
    public func requeue(_ queue: Queue, limit: Int) async throws -> [DeadLetterEntry] {
        try await withRequeueLock(queue) {
            let limit = min(limit, try await count(queue))
            var moved: [DeadLetterEntry] = []
            // Entries an interrupted requeue claimed go first (they are the oldest).
            while moved.count < limit, let raw = try await redis.lrange(claimed(queue), -1, -1).first {
                moved.append(try await push(raw, queue))
            }
            while moved.count < limit,
                let raw = try await redis.lmove(key(queue), claimed(queue), from: .right, to: .left)
            {
                moved.append(try await push(raw, queue))
            }
            return moved
        }
    }

    /// How long a requeue may hold its list's lock: one that stopped (its process died) lets go
    /// after this, and the next requeue pushes what it had claimed.
    static let requeueLease = Duration.seconds(300)

    /// Runs `body` holding `queue`'s requeue lock (`SET … NX PX`, released only by its holder),
    /// waiting for it while another requeue runs.
    func withRequeueLock<Value>(_ queue: Queue, _ body: () async throws -> Value) async throws -> Value {
        let lock = claimed(queue) + ":lock"
        let token = UUID().uuidString
        let lease = String(Self.requeueLease.components.seconds * 1000)
        while try await redis.send(["SET", lock, token, "NX", "PX", lease]).isNull {
            try await Task.sleep(for: .milliseconds(20))
        }
        do {
            let value = try await body()
            try await release(lock, token)
            return value
        } catch {
            try? await release(lock, token)
            throw error
        }
    }

    private func release(_ lock: String, _ token: String) async throws {
        _ = try await redis.send([
            "EVAL", "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
            "1", lock, token,
        ])
    }

    private func push(_ raw: String, _ queue: Queue) async throws -> DeadLetterEntry {
        let entry = DeadLetterEntry(raw: raw)
        try await redis.lpush(prefix + queue.target, [entry.requeued()])
        try await redis.lrem(claimed(queue), -1, raw)
        return entry
    }

    /// Empties `queue`'s list (and what a requeue had claimed) in one step; returns how many
    /// entries it held.
    public func clear(_ queue: Queue) async throws -> Int {
        let reply = try await redis.send([
            "EVAL",
            "local n = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) redis.call('DEL', KEYS[1], KEYS[2]) return n",
            "2", key(queue), claimed(queue),
        ])
        guard let count = reply.integer else { throw RedisError.unexpectedReply("EVAL answered \(reply)") }
        return Int(count)
    }
}

/// One entry of a dead-letter list as the API shows it. An entry is a ``DeadLetter`` (the job,
/// why it failed, when, which worker gave up); anything else pushed there is shown as a job of
/// its own.
public struct DeadLetterEntry: Sendable {
    public let raw: String
    /// The job as it was queued (text: JSON when it was a job).
    public let job: String
    public let error: String?
    public let lastFailedAt: Date?
    public let worker: String?
    /// From an analysis job: its id, attempts and first failure.
    public let jobId: String?
    public let attempts: Int?
    public let firstFailedAt: Date?

    public init(raw: String) {
        self.raw = raw
        let letter = try? DeadLetter.decode(raw)
        job = letter?.job ?? raw
        error = letter?.error
        lastFailedAt = letter?.failedAt
        worker = letter?.worker
        let analysis = try? AnalysisJob.decode(job)
        jobId = analysis?.jobId.uuidString.lowercased()
        attempts = analysis?.attempts
        firstFailedAt = analysis?.firstFailedAt ?? letter?.failedAt
    }

    /// The job to queue again: an analysis job with its attempts reset (its last error and
    /// first failure kept), anything else as it was.
    func requeued() throws -> String {
        guard var analysis = try? AnalysisJob.decode(job) else { return job }
        analysis.attempts = 0
        return try analysis.encoded()
    }
}
