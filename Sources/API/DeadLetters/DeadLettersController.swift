import Domain
import EventStore
import Foundation
import Hummingbird
import Logging
import Pipeline
import Redis

/// `/api/dlq/…`: the dead-letter lists of the job queues (the seeds' routes and shapes), admin
/// only. A requeue or a clear that moved anything is appended to the log as
/// `DeadLettersRequeued`/`DeadLettersCleared` with its actor, so the audit trail shows who did it
/// and to how many jobs. Without Redis (not configured, or down) the routes of its lists answer
/// 503. `dlq:alert_webhooks` is the webhook deliveries parked after their last attempt
/// (``WebhookDeadLetters``, in PostgreSQL): the same routes list, requeue and clear them.
struct DeadLettersController<Context: RequestContext> {
    let store: EventStore
    let queues: DeadLetterQueues?
    var webhooks: WebhookDeadLetters { WebhookDeadLetters(store: store) }

    /// A list the routes name.
    enum Target {
        case redis(DeadLetterQueues.Queue)
        case webhooks
    }

    func addRoutes(to router: Router<Context>) {
        router.get("/api/dlq/stats", use: stats)
        router.get("/api/dlq/jobs/{queue_name}", use: jobs)
        router.post("/api/dlq/requeue/{queue_name}", use: requeueOldest)
        router.post("/api/dlq/requeue-all/{queue_name}", use: requeueAll)
        router.delete("/api/dlq/{queue_name}", use: clear)
    }

    /// `{detection_queue_count, analysis_queue_count, alert_webhooks_count, total_count}`.
    @Sendable func stats(_ request: Request, context: Context) async throws -> Response {
        let queues = try available()
        let (analysis, detection) = try await redis {
            (try await queues.count(DeadLetterQueues.analysis), try await queues.count(DeadLetterQueues.detection))
        }
        let parked = try await webhooks.count()
        var body = JSONWriter()
        body.object { object in
            object.field("detection_queue_count", detection)
            object.field("analysis_queue_count", analysis)
            object.field("alert_webhooks_count", parked)
            object.field("total_count", analysis + detection + parked)
        }
        return body.response()
    }

    /// Entries oldest first (the order a requeue takes them), `start` (0) and `limit` (100, at
    /// most 1000).
    @Sendable func jobs(_ request: Request, context: Context) async throws -> Response {
        let target = try known(context)
        let parameters = QueryParameters(request)
        let start = try parameters.integer("start", default: 0, in: 0...Int(Int32.max))
        let limit = try parameters.integer("limit", default: 100, in: 1...1000)
        guard case .redis(let queue) = target else {
            let entries = try await webhooks.entries(start: start, limit: limit)
            var body = JSONWriter()
            body.object { object in
                object.field("queue_name", WebhookDeadLetters.name)
                object.array("jobs") { array in for entry in entries { array.object { Self.write(entry, into: &$0) } } }
                object.field("count", entries.count)
            }
            return body.response()
        }
        let queues = try available()
        let entries = try await redis { try await queues.entries(queue, start: start, limit: limit) }
        var body = JSONWriter()
        body.object { object in
            object.field("queue_name", queue.name)
            object.array("jobs") { array in
                for entry in entries { array.object { Self.write(entry, queue, into: &$0) } }
            }
            object.field("count", entries.count)
        }
        return body.response()
    }

    @Sendable func requeueOldest(_ request: Request, context: Context) async throws -> Response {
        try await requeue(request, context, limit: 1)
    }

    @Sendable func requeueAll(_ request: Request, context: Context) async throws -> Response {
        try await requeue(request, context, limit: DeadLetterQueues.requeueLimit)
    }

    /// `{success, message, job}`: `success` false when the list was empty; `job` is the one job a
    /// single requeue moved (null otherwise).
    private func requeue(_ request: Request, _ context: Context, limit: Int) async throws -> Response {
        let metadata = EventMetadata(request)
        guard case .redis(let queue) = try known(context) else {
            return try await requeueWebhooks(metadata, limit: limit)
        }
        let queues = try available()
        let moved = try await redis { try await queues.requeue(queue, limit: limit) }
        if !moved.isEmpty {
            try await record(
                DeadLettersRequeued(
                    queue: queue.name, target: queue.target, count: moved.count, jobIds: moved.compactMap(\.jobId)),
                metadata: metadata, redisChange: "requeued \(moved.count) job(s)")
        }
        var body = JSONWriter()
        body.object { object in
            object.field("success", !moved.isEmpty)
            if moved.isEmpty {
                object.field("message", "No jobs to requeue from \(queue.name)")
            } else if limit == 1 {
                object.field("message", "Job requeued from \(queue.name) to \(queue.target)")
            } else {
                let hitLimit = moved.count == limit ? " (hit limit of \(limit))" : ""
                object.field("message", "Requeued \(moved.count) jobs from \(queue.name) to \(queue.target)\(hitLimit)")
            }
            if limit == 1, let entry = moved.first {
                object.object("job") { Self.write(entry, queue, into: &$0) }
            } else {
                object.field("job", nil as String?)
            }
        }
        return body.response()
    }

    /// `{success, message, queue_name}`.
    @Sendable func clear(_ request: Request, context: Context) async throws -> Response {
        let metadata = EventMetadata(request)
        let name: String
        let cleared: Int
        switch try known(context) {
        case .redis(let queue):
            let queues = try available()
            (name, cleared) = (queue.name, try await redis { try await queues.clear(queue) })
        case .webhooks:
            (name, cleared) = (WebhookDeadLetters.name, try await webhooks.clear())
        }
        if cleared > 0 {
            try await record(
                DeadLettersCleared(queue: name, count: cleared), metadata: metadata,
                redisChange: "cleared \(cleared) job(s)")
        }
        var body = JSONWriter()
        body.object { object in
            object.field("success", true)
            object.field("message", "Cleared \(cleared) jobs from \(name)")
            object.field("queue_name", name)
        }
        return body.response()
    }

    /// Parked webhook deliveries due again, with a fresh set of attempts.
    private func requeueWebhooks(_ metadata: EventMetadata, limit: Int) async throws -> Response {
        let moved = try await webhooks.requeue(limit: limit)
        let name = WebhookDeadLetters.name
        let ids = moved.map { $0.uuidString.lowercased() }
        if !moved.isEmpty {
            try await record(
                DeadLettersRequeued(queue: name, target: WebhookDeadLetters.target, count: moved.count, jobIds: ids),
                metadata: metadata, redisChange: "requeued \(moved.count) delivery(ies)")
        }
        var body = JSONWriter()
        body.object { object in
            object.field("success", !moved.isEmpty)
            object.field(
                "message",
                moved.isEmpty
                    ? "No jobs to requeue from \(name)"
                    : "Requeued \(moved.count) jobs from \(name) to \(WebhookDeadLetters.target)")
            object.field("job", nil as String?)
            object.array("job_ids") { array in for id in ids { array.string(id) } }
        }
        return body.response()
    }

    /// A parked delivery in the entries' shape: the delivery as the job, its last error and
    /// attempts, when it was made and parked.
    static func write(_ entry: WebhookDeadLetters.Entry, into object: inout JSONWriter.ObjectWriter) {
        object.object("original_job") { job in
            job.field("delivery_id", entry.deliveryId.uuidString.lowercased())
            job.field("alert_id", entry.alertId)
            job.field("url", entry.url)
            job.raw("alert", json: entry.alert)
        }
        object.field("error", entry.error)
        object.field("attempt_count", Int64(entry.attempts))
        object.field("first_failed_at", EventCoding.timestamp(entry.createdAt))
        object.field("last_failed_at", EventCoding.timestamp(entry.parkedAt))
        object.field("worker", "webhook-deliverer")
        object.field("job_id", entry.deliveryId.uuidString.lowercased())
        object.field("queue_name", WebhookDeadLetters.target)
    }

    /// One entry in the seed's shape: the job as an object when it is JSON (else its text), its
    /// last error, attempts, first and last failure, and the queue it came from.
    static func write(
        _ entry: DeadLetterEntry, _ queue: DeadLetterQueues.Queue, into object: inout JSONWriter.ObjectWriter
    ) {
        if case .object? = try? StrictJSON.parse(entry.job.utf8) {
            object.raw("original_job", json: entry.job)
        } else {
            object.field("original_job", entry.job)
        }
        object.field("error", entry.error)
        object.field("attempt_count", entry.attempts.map(Int64.init))
        object.field("first_failed_at", entry.firstFailedAt.map { EventCoding.timestamp($0) })
        object.field("last_failed_at", entry.lastFailedAt.map { EventCoding.timestamp($0) })
        object.field("worker", entry.worker)
        object.field("job_id", entry.jobId)
        object.field("queue_name", queue.target)
    }

    /// Appends what an operator did; when that fails the change in Redis has happened
    /// unrecorded, which is said (in the log and the answer) instead of passed over.
    private func record(_ event: some DomainEvent, metadata: EventMetadata, redisChange: String) async throws {
        do {
            _ = try await store.append(to: event.stream, events: [try NewEvent(event, metadata: metadata)])
        } catch {
            store.logger.error(
                "dead letters changed but not recorded in the audit trail",
                metadata: ["change": "\(redisChange)", "actor": "\(metadata.actor)", "error": "\(error)"])
            throw APIError(
                .serviceUnavailable,
                "The dead-letter list was changed (\(redisChange)) but the change could not be recorded: \(error)")
        }
    }

    private func known(_ context: Context) throws -> Target {
        let name = try context.parameters.text("queue_name")
        if name == WebhookDeadLetters.name || name == WebhookDeadLetters.target { return .webhooks }
        guard let queue = DeadLetterQueues.named(name) else {
            throw APIError.notFound(
                "Unknown dead-letter queue: \(name) (known: "
                    + (DeadLetterQueues.known.map(\.name) + [WebhookDeadLetters.name]).joined(separator: ", ") + ")")
        }
        return .redis(queue)
    }

    private func available() throws -> DeadLetterQueues {
        guard let queues else {
            throw APIError(
                .serviceUnavailable, "Redis is not configured: the job queues and their dead letters live there")
        }
        return queues
    }

    /// Runs Redis commands; a Redis that fails is a 503 in the seed's format.
    private func redis<Value>(_ body: () async throws -> Value) async throws -> Value {
        do {
            return try await body()
        } catch let error as RedisError {
            throw APIError(.serviceUnavailable, "Redis is unavailable: \(error)")
        }
    }
}
