import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PostgresNIO
import Projections

/// Detection ingest: `POST /api/detections` (one), `POST /api/detections/batch` (a JSON array,
/// all or nothing), and the same path with `Content-Type: application/x-ndjson` (a stream of
/// one detection per line through the log's COPY path; good lines are kept, bad ones reported
/// by line number).
///
/// Every accepted detection is a `DetectionRecorded` event with its id from the shared
/// sequence. With an `Idempotency-Key` header, each detection's event id is derived from the
/// key (and its index or line), so a retry writes nothing new and answers with what the first
/// attempt stored.
struct DetectionIngest<Context: RequestContext> {
    let store: EventStore
    let appender: GroupCommitAppender
    let workerKey: String?
    /// When a detection may say it happened (`detected_at`).
    let eventTimes: EventTimeWindow

    /// NDJSON lines appended per transaction.
    static var chunkLines: Int { 5000 }

    func addRoutes(to group: RouterGroup<Context>) {
        group.post(use: createOne)
        group.post("batch", use: createBatch)
    }

    @Sendable func createOne(_ request: Request, context: Context) async throws -> Response {
        let metadata = try authorize(request)
        var body = try await JSONBody.parse(request, context: context)
        let input = DetectionInput(&body, eventTimes: eventTimes)
        try body.validate()
        guard let input else { throw ValidationError([]) }
        let unknown = try await unknownCameras([(input, ["body", "camera_id"])])
        if !unknown.isEmpty { throw ValidationError(unknown) }
        let eventID = idempotentID(request, metadata: metadata, index: 0) ?? UUID()
        let detection = input.detection(id: try await takeIDs(1)[0])
        let result = try await appender.append(
            AppendRequest(
                stream: detection.stream, events: [try NewEvent(detection, id: eventID, metadata: metadata)]))
        let stored = result.wasAlreadyStored ? try await storedDetections([eventID])[eventID] ?? detection : detection
        var writer = JSONWriter()
        writer.object { DetectionJSON.write(stored, to: &$0) }
        return writer.response(status: result.wasAlreadyStored ? .ok : .created)
    }

    @Sendable func createBatch(_ request: Request, context: Context) async throws -> Response {
        let metadata = try authorize(request)
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
        var inputs: [(DetectionInput, [String])] = []
        var issues: [ValidationError.Issue] = []
        for (index, item) in items.enumerated() {
            let location = ["body", String(index)]
            switch JSONBody.item(item, location: location) {
            case .failure(let error): issues += error.issues
            case .success(var body):
                let input = DetectionInput(&body, eventTimes: eventTimes)
                issues += body.issues
                if let input { inputs.append((input, location + ["camera_id"])) }
            }
        }
        issues += try await unknownCameras(inputs)
        if !issues.isEmpty { throw ValidationError(issues) }
        let ids = try await takeIDs(inputs.count)
        var events: [(stream: String, event: NewEvent)] = []
        var detections: [DetectionRecorded] = []
        var eventIDs: [UUID] = []
        for (index, (input, _)) in inputs.enumerated() {
            let detection = input.detection(id: ids[index])
            let eventID = idempotentID(request, metadata: metadata, index: index) ?? UUID()
            detections.append(detection)
            eventIDs.append(eventID)
            events.append((detection.stream, try NewEvent(detection, id: eventID, metadata: metadata)))
        }
        let result = try await store.appendBulk(events)
        if let refused = result.refused.first { throw APIError.conflict(refusal(refused.error)) }
        if result.alreadyStored > 0 {
            let stored = try await storedDetections(eventIDs)
            detections = zip(detections, eventIDs).map { stored[$1] ?? $0 }
        }
        var writer = JSONWriter()
        writer.object { object in
            object.array("detections") { array in
                for detection in detections { array.object { DetectionJSON.write(detection, to: &$0) } }
            }
            object.field("count", detections.count)
        }
        return writer.response(status: result.appended > 0 ? .created : .ok)
    }

    /// NDJSON: read line by line, append every `chunkLines` good lines; a bad line is reported
    /// (`line` is 1-based) and skipped. Each chunk is one transaction.
    private func createFromLines(_ request: Request, metadata: EventMetadata) async throws -> Response {
        var report = LineReport()
        var pending: [(line: Int, input: DetectionInput)] = []
        var lineNumber = 0
        var partial = ByteBuffer()

        func handle(_ line: ByteBuffer) async throws {
            lineNumber += 1
            let bytes = line.readableBytesView
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }) { return }  // blank line
            let location = ["line", String(lineNumber)]
            let value: JSONValue
            switch JSONBody.decode(bytes, under: location) {
            case .success(let decoded): value = decoded
            case .failure(let error):
                report.reject(lineNumber, error.issues)
                return
            }
            switch JSONBody.item(value, location: location) {
            case .failure(let error): report.reject(lineNumber, error.issues)
            case .success(var body):
                let input = DetectionInput(&body, eventTimes: eventTimes)
                if let input, body.issues.isEmpty {
                    pending.append((lineNumber, input))
                } else {
                    report.reject(lineNumber, body.issues)
                }
            }
            if pending.count >= Self.chunkLines {
                try await appendChunk(pending, request: request, metadata: metadata, report: &report)
                pending.removeAll(keepingCapacity: true)
            }
        }

        // A line longer than `BodyLimits.ndjsonLine` is not kept: its bytes are skipped up to
        // the next newline and the line is reported, so memory stays bounded whatever arrives.
        var skippingLongLine = false
        func rejectLongLine() {
            lineNumber += 1
            report.reject(
                lineNumber,
                [
                    .init(
                        location: ["line", String(lineNumber)],
                        message: "Line should have at most \(BodyLimits.ndjsonLine) bytes", type: "too_long")
                ])
        }
        for try await var chunk in request.body {
            while let newline = chunk.readableBytesView.firstIndex(of: 0x0a) {
                let length = newline - chunk.readerIndex
                var line = chunk.readSlice(length: length)!
                chunk.moveReaderIndex(forwardBy: 1)
                if skippingLongLine {
                    skippingLongLine = false
                    rejectLongLine()
                } else if partial.readableBytes + line.readableBytes > BodyLimits.ndjsonLine {
                    partial.clear()
                    rejectLongLine()
                } else if partial.readableBytes > 0 {
                    partial.writeBuffer(&line)
                    try await handle(partial)
                    partial.clear()
                } else {
                    try await handle(line)
                }
            }
            if skippingLongLine { continue }
            if partial.readableBytes + chunk.readableBytes > BodyLimits.ndjsonLine {
                partial = ByteBuffer()
                skippingLongLine = true
            } else {
                partial.writeBuffer(&chunk)
            }
        }
        if skippingLongLine {
            rejectLongLine()
        } else if partial.readableBytes > 0 {
            try await handle(partial)
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
        _ lines: [(line: Int, input: DetectionInput)], request: Request, metadata: EventMetadata,
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
        _ lines: [(line: Int, input: DetectionInput)], request: Request, metadata: EventMetadata,
        report: inout LineReport
    ) async throws {
        let known = try await knownCameras(Set(lines.map(\.input.cameraId)))
        var accepted: [(line: Int, input: DetectionInput)] = []
        for entry in lines {
            if known.contains(entry.input.cameraId) {
                accepted.append(entry)
            } else {
                report.reject(entry.line, [Self.unknownCamera(entry.input.cameraId, at: ["line", String(entry.line)])])
            }
        }
        guard !accepted.isEmpty else { return }
        let ids = try await takeIDs(accepted.count)
        var events: [(stream: String, event: NewEvent)] = []
        for (index, entry) in accepted.enumerated() {
            let detection = entry.input.detection(id: ids[index])
            let eventID = idempotentID(request, metadata: metadata, index: entry.line) ?? UUID()
            events.append((detection.stream, try NewEvent(detection, id: eventID, metadata: metadata)))
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

    func authorize(_ request: Request) throws -> EventMetadata {
        try SharedKey(workerKey, actor: "worker").authorize(request)
    }

    private func idempotentID(_ request: Request, metadata: EventMetadata, index: Int) -> UUID? {
        guard let key = request.headers[HTTPField.Name("Idempotency-Key")!], !key.isEmpty else { return nil }
        return DeterministicID.uuid("DetectionRecorded", metadata.actor, key, String(index))
    }

    private func refusal(_ error: AppendError) -> String {
        if case .duplicateEventID = error {
            return "Idempotency-Key was already used for a different request"
        }
        return "\(error)"
    }

    static func unknownCamera(_ id: String, at location: [String]) -> ValidationError.Issue {
        .init(location: location, message: "Value error, camera '\(id)' does not exist", type: "value_error")
    }

    private func unknownCameras(_ inputs: [(DetectionInput, [String])]) async throws -> [ValidationError.Issue] {
        guard !inputs.isEmpty else { return [] }
        let known = try await knownCameras(Set(inputs.map(\.0.cameraId)))
        return inputs.filter { !known.contains($0.0.cameraId) }.map { Self.unknownCamera($0.0.cameraId, at: $0.1) }
    }

    /// Which of `ids` are registered and not removed: the cameras read model, and for the
    /// ones it doesn't show (a registration it hasn't applied yet), the camera's stream.
    private func knownCameras(_ ids: Set<String>) async throws -> Set<String> {
        let rows = try await store.client.guardedQuery(
            "SELECT id FROM cameras WHERE id = ANY(\(Array(ids))) AND removed_at IS NULL", logger: store.logger)
        var known: Set<String> = []
        for try await id in rows.decode(String.self) { known.insert(id) }
        for id in ids.subtracting(known).prefix(100) {
            guard let page = try await store.readStream(Camera.stream(id)) else { continue }
            if try Camera.fold(page.events.map { ($0.type, $0.data) }) != nil { known.insert(id) }
        }
        return known
    }

    private func takeIDs(_ count: Int) async throws -> [Int64] {
        let rows = try await store.client.guardedQuery(
            "SELECT nextval('detection_ids') AS id FROM generate_series(1, \(count)) ORDER BY id",
            logger: store.logger)
        var ids: [Int64] = []
        ids.reserveCapacity(count)
        for try await id in rows.decode(Int64.self) { ids.append(id) }
        return ids
    }

    /// The detections stored under `eventIDs` (what a retried request's first attempt wrote).
    private func storedDetections(_ eventIDs: [UUID]) async throws -> [UUID: DetectionRecorded] {
        let rows = try await store.client.guardedQuery(
            "SELECT event_id, data::text FROM events WHERE event_id = ANY(\(eventIDs))", logger: store.logger)
        var stored: [UUID: DetectionRecorded] = [:]
        for try await (id, data) in rows.decode((UUID, String).self) { stored[id] = try DetectionRecorded.decode(data) }
        return stored
    }
}

/// The per-line outcome of an NDJSON upload.
struct LineReport {
    /// Per-line errors reported in full; the rest are counted.
    static let reportedErrors = 100

    var accepted = 0
    var alreadyStored = 0
    var rejected = 0
    var errors: [(line: Int, issues: [ValidationError.Issue])] = []

    mutating func reject(_ line: Int, _ issues: [ValidationError.Issue]) {
        rejected += 1
        if errors.count < Self.reportedErrors { errors.append((line, issues)) }
    }

    /// Lines that held a detection, good or bad (blank lines don't count).
    var lines: Int { accepted + alreadyStored + rejected }

    func response() -> Response {
        var writer = JSONWriter()
        writer.object { object in
            object.field("accepted", accepted)
            object.field("already_stored", alreadyStored)
            object.field("rejected", rejected)
            object.array("errors") { array in
                for error in errors.sorted(by: { $0.line < $1.line }) {
                    array.object { item in
                        item.field("line", error.line)
                        item.array("detail") { detail in
                            for issue in error.issues {
                                detail.object { issue.write(to: &$0) }
                            }
                        }
                    }
                }
            }
            object.field("errors_truncated", errors.count < rejected)
        }
        return writer.response(status: .ok)
    }
}

/// A detection as a client sends it, validated.
struct DetectionInput: Sendable {
    var cameraId: String
    var filePath: String
    var fileType: String
    var detectedAt: Date
    var objectType: String
    var confidence: Double
    var bbox: (x: Int, y: Int, width: Int, height: Int)
    var thumbnailPath: String?
    var mediaType: String
    var duration: Double?
    var videoCodec: String?
    var videoWidth: Int?
    var videoHeight: Int?
    var enrichmentData: [String: JSONValue]?

    enum MediaType: String, CaseIterable { case image, video }

    /// Reads every field, recording every problem in `body`; nil if any required field failed.
    init?(_ body: inout JSONBody, eventTimes: EventTimeWindow) {
        let cameraId = body.string("camera_id", required: true, length: 1...100)
        let filePath = body.string("file_path", required: true, length: 1...1000)
        let fileType = body.string("file_type", length: 1...100)
        let detectedAt = body.eventTime("detected_at", window: eventTimes)
        let objectType = body.string("object_type", required: true, length: 1...50)
        let confidence = body.number("confidence", required: true, in: 0...1)
        let x = body.integer("bbox_x", required: true, in: 0...100_000)
        let y = body.integer("bbox_y", required: true, in: 0...100_000)
        let width = body.integer("bbox_width", required: true, in: 1...100_000)
        let height = body.integer("bbox_height", required: true, in: 1...100_000)
        let thumbnailPath = body.string("thumbnail_path", length: 1...1000)
        let mediaType = body.choice("media_type", MediaType.self)
        let duration = body.number("duration", in: 0...86_400)
        let videoCodec = body.string("video_codec", length: 1...50)
        let videoWidth = body.integer("video_width", in: 1...100_000)
        let videoHeight = body.integer("video_height", in: 1...100_000)
        let enrichment = body.object("enrichment_data")
        guard let cameraId, let filePath, let objectType, let confidence, let x, let y, let width, let height,
            body.issues.isEmpty
        else { return nil }
        self.cameraId = cameraId
        self.filePath = filePath
        self.fileType = fileType ?? (mediaType == .video ? "video/mp4" : "image/jpeg")
        self.detectedAt = detectedAt ?? Date()
        self.objectType = objectType
        self.confidence = confidence
        self.bbox = (x, y, width, height)
        self.thumbnailPath = thumbnailPath
        self.mediaType = (mediaType ?? .image).rawValue
        self.duration = duration
        self.videoCodec = videoCodec
        self.videoWidth = videoWidth
        self.videoHeight = videoHeight
        self.enrichmentData = enrichment
    }

    func detection(id: Int64) -> DetectionRecorded {
        DetectionRecorded(
            id: id, cameraId: cameraId, filePath: filePath, fileType: fileType, detectedAt: detectedAt,
            objectType: objectType, confidence: confidence, bboxX: bbox.x, bboxY: bbox.y, bboxWidth: bbox.width,
            bboxHeight: bbox.height, thumbnailPath: thumbnailPath, mediaType: mediaType, duration: duration,
            videoCodec: videoCodec, videoWidth: videoWidth, videoHeight: videoHeight, enrichmentData: enrichmentData)
    }
}

/// A detection in the shape `GET /api/detections/{id}` answers (microsecond timestamps).
enum DetectionJSON {
    static func write(_ detection: DetectionRecorded, to object: inout JSONWriter.ObjectWriter) {
        object.field("id", detection.id)
        object.field("camera_id", detection.cameraId)
        object.field("file_path", detection.filePath)
        object.field("file_type", detection.fileType)
        object.field("detected_at", timestamp(detection.detectedAt))
        object.field("object_type", detection.objectType)
        object.field("confidence", detection.confidence)
        object.field("bbox_x", detection.bboxX)
        object.field("bbox_y", detection.bboxY)
        object.field("bbox_width", detection.bboxWidth)
        object.field("bbox_height", detection.bboxHeight)
        object.field("thumbnail_path", detection.thumbnailPath)
        object.field("media_type", detection.mediaType)
        object.field("duration", detection.duration)
        object.field("video_codec", detection.videoCodec)
        object.field("video_width", detection.videoWidth.map(Int64.init))
        object.field("video_height", detection.videoHeight.map(Int64.init))
        if let enrichment = detection.enrichmentData,
            let json = try? String(decoding: EventCoding.encoder.encode(enrichment), as: UTF8.self)
        {
            object.raw("enrichment_data", json: json)
        } else {
            object.field("enrichment_data", nil as String?)
        }
    }

    /// `2026-11-23T15:11:07.123000Z`, like `vigil_ts` in SQL.
    static func timestamp(_ date: Date) -> String {
        let millis = EventCoding.timestamp(date)  // …SS.mmmZ
        return String(millis.dropLast()) + "000Z"
    }
}
