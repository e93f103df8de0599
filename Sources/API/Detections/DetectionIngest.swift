import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Projections

/// Detection ingest: `POST /api/detections` (one), `POST /api/detections/batch` (a JSON array,
/// all or nothing), and the same path with `Content-Type: application/x-ndjson` (a stream of
/// one detection per line through the log's COPY path; good lines are kept, bad ones reported
/// by line number).
///
/// Every accepted detection is a `DetectionRecorded` event with its id from the shared
/// sequence (``IDSequence/detections``; a single one from a block this process reserved,
/// ``IDBlocks``). With an `Idempotency-Key` header, each detection's
/// event id is derived from the key (and its index or line), so a retry writes nothing new and
/// answers with what the first attempt stored; its metadata carries a digest of the input, so
/// the key reused for different input is a 409, not an answer about the first (the digest is
/// only computed for keyed requests). Answers render detections like `GET /api/detections/{id}`
/// does (``DetectionsReadModel/render(eventData:)``).
struct DetectionIngest<Context: RequestContext> {
    let store: EventStore
    let appender: GroupCommitAppender
    let detections: DetectionsReadModel
    let cameras: KnownCameras
    /// Single detections' ids (a batch takes its own from the sequence in one round trip).
    let ids: IDBlocks
    /// When a detection may say it happened (`detected_at`).
    let eventTimes: EventTimeWindow

    /// NDJSON lines appended per transaction.
    static var chunkLines: Int { 5000 }

    func addRoutes(to group: RouterGroup<Context>) {
        group.post(use: createOne)
        group.post("batch", use: createBatch)
    }

    @Sendable func createOne(_ request: Request, context: Context) async throws -> Response {
        let metadata = EventMetadata(request)
        var body = try await JSONBody.parse(request, context: context)
        let input = DetectionInput(&body, eventTimes: eventTimes)
        try body.validate()
        guard let input else { throw ValidationError([]) }
        let unknown = try await cameras.issues([(input, ["body", "camera_id"])])
        if !unknown.isEmpty { throw ValidationError(unknown) }
        let identity = identity(request, metadata: metadata, index: 0, digest: body.digest)
        let eventID = identity.id
        let detection = input.detection(id: try await ids.next())
        let event = try NewEvent(detection, id: eventID, metadata: identity.metadata)
        let result: AppendResult
        do {
            result = try await appender.append(AppendRequest(stream: detection.stream, events: [event]))
        } catch let error as AppendError {
            // The key's event is stored, but for another camera (another stream).
            throw APIError.conflict(refusal(error))
        }
        // Rendered after the commit, in this task: in Swift for nearly every detection (a few
        // µs), so a child task to overlap it with the commit cost more than it saved (a task
        // and a job per POST; docs/BENCHMARKS.md, Ingest, session 46).
        let items =
            result.wasAlreadyStored
            ? try await renderStored([eventID], else: [event.data])
            : try await detections.render([(detection, event.data)])
        guard let item = items.first else { throw APIError.notFound("Detection \(detection.id) not found") }
        return jsonResponse(item, status: result.wasAlreadyStored ? .ok : .created)
    }

    @Sendable func createBatch(_ request: Request, context: Context) async throws -> Response {
        let metadata = EventMetadata(request)
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        if contentType.hasPrefix("application/x-ndjson") || contentType.hasPrefix("application/jsonl") {
            return try await createFromLines(request, metadata: metadata)
        }
        try JSONBody.requireJSONContentType(request)
        let buffer = try await request.body.collect(upTo: BodyLimits.jsonBatch)
        guard case .array(let items) = try JSONBody.decode(buffer.readableBytesView, under: ["body"]).get() else {
            throw ValidationError(location: ["body"], message: "Input should be a valid list", type: "list_type")
        }
        guard !items.isEmpty, items.count <= 10_000 else {
            throw ValidationError(
                location: ["body"], message: "List should have between 1 and 10000 items", type: "too_short")
        }
        // All or nothing: every item is checked before anything is written.
        var inputs: [(input: DetectionInput, location: [String])] = []
        let keyed = Self.idempotencyKey(request) != nil
        var digests: [String?] = []
        var issues: [ValidationError.Issue] = []
        for (index, item) in items.enumerated() {
            let location = ["body", String(index)]
            switch JSONBody.item(item, location: location) {
            case .failure(let error): issues += error.issues
            case .success(var body):
                let input = DetectionInput(&body, eventTimes: eventTimes)
                issues += body.issues
                if let input {
                    inputs.append((input, location + ["camera_id"]))
                    digests.append(keyed ? body.digest : nil)
                }
            }
        }
        issues += try await cameras.issues(inputs)
        if !issues.isEmpty { throw ValidationError(issues) }
        let ids = try await store.takeIDs(inputs.count, from: .detections)
        var events: [(stream: String, event: NewEvent)] = []
        var made: [(detection: DetectionRecorded, eventData: String)] = []
        for (index, (input, _)) in inputs.enumerated() {
            let detection = input.detection(id: ids[index])
            let identity = identity(request, metadata: metadata, index: index, digest: digests[index])
            let event = try NewEvent(detection, id: identity.id, metadata: identity.metadata)
            events.append((detection.stream, event))
            made.append((detection, event.data))
        }
        async let rendered = detections.render(made)
        let result = try await store.appendBulk(events, allOrNothing: true)
        if let refused = result.refused.first { throw APIError.conflict(refusal(refused.error)) }
        var json = try await rendered
        if result.alreadyStored > 0 {
            json = try await renderStored(events.map(\.event.id), else: events.map(\.event.data))
        }
        var writer = JSONWriter()
        writer.object { object in
            object.array("detections") { array in for item in json { array.raw(json: item) } }
            object.field("count", json.count)
        }
        return writer.response(status: result.appended > 0 ? .created : .ok)
    }

    /// NDJSON: read line by line, append every `chunkLines` good lines; a bad line is reported
    /// (`line` is 1-based) and skipped. Each chunk is one transaction.
    private func createFromLines(_ request: Request, metadata: EventMetadata) async throws -> Response {
        var report = LineReport()
        let keyed = Self.idempotencyKey(request) != nil
        var pending: [PendingLine] = []
        var lineNumber = 0
        try await NDJSONLines.forEach(in: request.body, maxLength: BodyLimits.ndjsonLine) { line in
            lineNumber += 1
            let location = ["line", String(lineNumber)]
            switch line {
            case .tooLong:
                report.reject(
                    lineNumber,
                    [
                        .init(
                            location: location, message: "Line should have at most \(BodyLimits.ndjsonLine) bytes",
                            type: "too_long")
                    ])
            case .line(let line):
                let bytes = line.readableBytesView
                if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }) { return }  // blank line
                switch JSONBody.decode(bytes, under: location).flatMap({ JSONBody.item($0, location: location) }) {
                case .failure(let error): report.reject(lineNumber, error.issues)
                case .success(var body):
                    let input = DetectionInput(&body, eventTimes: eventTimes)
                    if let input, body.issues.isEmpty {
                        pending.append(
                            PendingLine(line: lineNumber, input: input, digest: keyed ? body.digest : nil))
                    } else {
                        report.reject(lineNumber, body.issues)
                    }
                }
                if pending.count >= Self.chunkLines {
                    try await appendChunk(pending, request: request, metadata: metadata, report: &report)
                    pending.removeAll(keepingCapacity: true)
                }
            }
        }
        if !pending.isEmpty { try await appendChunk(pending, request: request, metadata: metadata, report: &report) }
        guard report.lines > 0 else {
            throw ValidationError(location: ["body"], message: "No detections in the body", type: "missing")
        }
        return report.response()
    }

    /// Appends a chunk. Once part of the upload is written, a failure (the database gone) is
    /// reported on the chunk's lines instead of a 500, which would hide what was stored; a retry
    /// with the same `Idempotency-Key` then writes only the rest.
    private func appendChunk(
        _ lines: [PendingLine], request: Request, metadata: EventMetadata,
        report: inout LineReport
    ) async throws {
        var attempt = report
        do {
            try await appendLines(lines, request: request, metadata: metadata, report: &attempt)
            report = attempt
        } catch let error where report.accepted + report.alreadyStored > 0 {
            store.logger.error("NDJSON chunk not stored", metadata: ["error": "\(String(reflecting: error))"])
            for entry in lines {
                report.reject(
                    entry.line,
                    [
                        .init(
                            location: ["line", String(entry.line)],
                            message: "Not stored (the database failed); retry the upload with the same Idempotency-Key",
                            type: "store_error")
                    ])
            }
        }
    }

    private func appendLines(
        _ lines: [PendingLine], request: Request, metadata: EventMetadata,
        report: inout LineReport
    ) async throws {
        let known = try await cameras.known(Set(lines.map(\.input.cameraId)))
        var accepted: [PendingLine] = []
        for entry in lines {
            if known.contains(entry.input.cameraId) {
                accepted.append(entry)
            } else {
                report.reject(
                    entry.line, [KnownCameras.unknown(entry.input.cameraId, at: ["line", String(entry.line)])])
            }
        }
        guard !accepted.isEmpty else { return }
        let ids = try await store.takeIDs(accepted.count, from: .detections)
        var events: [(stream: String, event: NewEvent)] = []
        for (index, entry) in accepted.enumerated() {
            let detection = entry.input.detection(id: ids[index])
            let identity = identity(request, metadata: metadata, index: entry.line, digest: entry.digest)
            events.append((detection.stream, try NewEvent(detection, id: identity.id, metadata: identity.metadata)))
        }
        let result = try await store.appendBulk(events)
        report.accepted += result.appended
        report.alreadyStored += result.alreadyStored
        for (index, error) in result.refused {
            let line = accepted[index].line
            report.reject(line, [.init(location: ["line", String(line)], message: refusal(error), type: "conflict")])
        }
    }

    // MARK: - Shared

    /// A good NDJSON line waiting for its chunk.
    private struct PendingLine {
        var line: Int
        var input: DetectionInput
        /// With an `Idempotency-Key` only.
        var digest: String?
    }

    /// The event id and metadata of the detection at `index` (or line): without an
    /// `Idempotency-Key` a fresh id; with one, an id derived from the key and the input's
    /// `digest` in the metadata, which the log writer compares on a retry (evaluated only then:
    /// hashing every unkeyed detection would cost the hot path for nothing).
    private func identity(
        _ request: Request, metadata: EventMetadata, index: Int, digest: @autoclosure () -> String?
    ) -> (id: UUID, metadata: EventMetadata) {
        guard let key = Self.idempotencyKey(request) else { return (.random(), metadata) }
        var keyed = metadata
        keyed.requestDigest = digest()
        return (DeterministicID.uuid("DetectionRecorded", metadata.actor, key, String(index)), keyed)
    }

    private static func idempotencyKey(_ request: Request) -> String? {
        guard let key = request.headers[HTTPField.Name("Idempotency-Key")!], !key.isEmpty else { return nil }
        return key
    }

    private func refusal(_ error: AppendError) -> String {
        if case .duplicateEventID = error {
            return "Idempotency-Key was already used for a different request"
        }
        return "\(error)"
    }

    /// The detections a retried request's first attempt stored under `eventIDs` (for an id
    /// not stored, the payload at the same index of `fallback`), rendered.
    private func renderStored(_ eventIDs: [UUID], else fallback: [String]) async throws -> [String] {
        var stored: [UUID: String] = [:]
        for event in try await store.events(withIDs: eventIDs) { stored[event.id] = event.data }
        return try await detections.render(eventData: zip(eventIDs, fallback).map { stored[$0] ?? $1 })
    }
}
