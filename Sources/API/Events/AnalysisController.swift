import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Projections

/// Analyses of a security event: an analyzer posts its result, anyone can ask for a new one,
/// and every analysis stays in the event's history (its stream in the log).
///
/// - `POST /api/events/{id}/analysis` `{risk_score, summary, reasoning, model?, latency_ms?,
///   job_id?}` → 201, `SecurityEventAnalyzed`. With the job's `job_id`, posting the same job's
///   result twice records it once.
/// - `POST /api/events/{id}/reanalyse` `{reason?}` → 202, `ReanalysisRequested`; the analysis
///   publisher turns it into a job on `analysis_queue`.
/// - `GET /api/events/{id}/analyses` → every analysis, oldest first.
///
/// An event of a removed camera is a 404 to the reads and to `reanalyse`, as to `GET
/// /api/events/{id}`; an analyzer's result for it is still recorded (the job was out).
struct AnalysisController<Context: RequestContext> {
    let events: SecurityEventsReadModel
    let store: EventStore
    let appender: GroupCommitAppender
    let readYourWrites: ReadYourWrites
    let thresholds: @Sendable () async throws -> SeverityThresholds

    func addRoutes(to router: Router<Context>) {
        router.post("/api/events/{event_id}/analysis", use: record)
        router.post("/api/events/{event_id}/reanalyse", use: reanalyse)
        router.get("/api/events/{event_id}/analyses", use: history)
        router.get("/api/events/{event_id}/history", use: changes)
    }

    /// `GET /api/events/{id}/history`: every change to the security event, oldest first, as its
    /// stream (`secevent-<id>`) has it: opened and closed by the batch aggregator (with the
    /// detections they took in), analyzed, reviewed, re-analysis requested; each with who
    /// (`actor`) and when. The payload is the event's own (`data`); client addresses stay in the
    /// log and the audit trail.
    @Sendable func changes(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.integerID("event_id")
        let page = try await eventStream(id)
        var writer = JSONWriter()
        writer.object { object in
            object.field("event_id", id)
            object.array("history") { array in
                for event in page.events {
                    let metadata = try? EventCoding.decoder.decode(EventMetadata.self, from: Data(event.metadata.utf8))
                    array.object { item in
                        item.field("version", event.version)
                        item.field("type", event.type)
                        item.field("at", JSONWriter.microseconds(event.recordedAt))
                        item.field("actor", metadata?.actor)
                        item.field("checkpoint", event.checkpoint.token)
                        item.raw("data", json: event.data)
                    }
                }
            }
            object.field("count", page.events.count)
        }
        return writer.response()
    }

    @Sendable func record(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.integerID("event_id")
        let metadata = EventMetadata(request)
        var body = try await JSONBody.parse(request, context: context)
        let score = body.integer("risk_score", required: true, in: 0...100)
        let summary = body.string("summary", required: true, length: 1...10_000, multiline: true)
        let reasoning = body.string("reasoning", length: 0...100_000, multiline: true)
        let model = body.string("model", length: 1...200)
        let latency = body.integer("latency_ms", in: 0...86_400_000)
        let jobText = body.string("job_id")
        let job = jobText.flatMap(UUID.init(uuidString:))
        if jobText != nil && job == nil { body.fail("job_id", "Input should be a valid UUID", "uuid_parsing") }
        try body.validate()
        guard let score, let summary else { throw ValidationError([]) }
        let analyzed = SecurityEventAnalyzed(
            id: id, riskScore: score, summary: summary, reasoning: reasoning ?? "", model: model, latencyMs: latency)
        let eventID = job.map(AnalysisJob.analysisEventID) ?? .random()
        let result = try await append(analyzed, id: eventID, request: request, metadata: metadata)
        // A job answered twice (a retry, or a second analyzer after a republish) gets the first
        // result, which is what the log holds, whatever this request said.
        var recorded = analyzed
        if result.wasAlreadyStored, let stored = try await store.events(withIDs: [eventID]).first {
            recorded = try SecurityEventAnalyzed.decode(stored.data)
        }
        let level = try await thresholds().level(recorded.riskScore)
        var writer = JSONWriter()
        writer.object { object in
            object.field("event_id", id)
            object.field("risk_score", recorded.riskScore)
            object.field("risk_level", level.rawValue)
            object.field("summary", recorded.summary)
            object.field("reasoning", recorded.reasoning)
            object.field("model", recorded.model)
            object.field("latency_ms", recorded.latencyMs.map(Int64.init))
            object.field("job_id", job?.uuidString.lowercased())
        }
        return writer.response(status: result.wasAlreadyStored ? .ok : .created)
    }

    @Sendable func reanalyse(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.integerID("event_id")
        var reason: String?
        if let length = request.headers[.contentLength].flatMap(Int.init), length > 0 {
            var body = try await JSONBody.parse(request, context: context)
            reason = body.string("reason", length: 0...1000, multiline: true)
            try body.validate()
        }
        try await events.requireVisible(id)
        let eventID = UUID.random()
        try await append(ReanalysisRequested(id: id, reason: reason), id: eventID, request: request)
        var writer = JSONWriter()
        writer.object { object in
            object.field("event_id", id)
            object.field("status", "queued")
            object.field("job_id", DeterministicID.uuid("AnalysisJob", eventID.uuidString).uuidString.lowercased())
        }
        return writer.response(status: .accepted)
    }

    /// The security event's stream; 404 without events: never opened, or archived by retention
    /// (the stream keeps its version only), or its camera removed.
    private func eventStream(_ id: Int64) async throws -> StreamPage {
        try await events.requireVisible(id)
        guard let page = try await store.readStream(SecurityEvents.stream(id), limit: 100_000), !page.events.isEmpty
        else { throw APIError.notFound("Event \(id) not found") }
        return page
    }

    @Sendable func history(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.integerID("event_id")
        let page = try await eventStream(id)
        let thresholds = try await thresholds()
        let analyses = page.events.compactMap { event -> (SecurityEventAnalyzed, RecordedEvent)? in
            guard event.type == SecurityEventAnalyzed.type, let analyzed = try? SecurityEventAnalyzed.decode(event.data)
            else { return nil }
            return (analyzed, event)
        }
        var writer = JSONWriter()
        writer.object { object in
            object.array("analyses") { array in
                for (analyzed, event) in analyses {
                    let actor = try? EventCoding.decoder.decode(EventMetadata.self, from: Data(event.metadata.utf8))
                    array.object { item in
                        item.field("risk_score", analyzed.riskScore)
                        item.field("risk_level", thresholds.level(analyzed.riskScore).rawValue)
                        item.field("summary", analyzed.summary)
                        item.field("reasoning", analyzed.reasoning)
                        item.field("model", analyzed.model)
                        item.field("latency_ms", analyzed.latencyMs.map(Int64.init))
                        item.field("analyzed_at", JSONWriter.microseconds(event.recordedAt))
                        item.field("actor", actor?.actor)
                    }
                }
            }
            object.field("count", analyses.count)
        }
        return writer.response()
    }

    /// Appends to an existing security event (404 if there is none) and waits for the read
    /// model to show it.
    @discardableResult
    private func append(
        _ event: some DomainEvent, id: UUID, request: Request, metadata: EventMetadata? = nil
    ) async throws -> AppendResult {
        let missing = APIError.notFound("Event \(event.stream.dropFirst("secevent-".count)) not found")
        do {
            return try await appender.appendCommand(
                event, id: id, expected: .streamExists, request: request, metadata: metadata,
                readYourWrites: readYourWrites, waitFor: ["security_events"], conflict: missing)
        } catch AppendError.duplicateEventID {
            throw APIError.conflict("This job's result was already recorded for another event")
        }
    }
}
