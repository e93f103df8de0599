import Domain
import EventStore
import Foundation
import Hummingbird
import NIOCore
import Projections

/// `/api/events`: security events — list, one, its detections, review, stats, search, export.
struct EventsController<Context: RequestContext> {
    let events: SecurityEventsReadModel
    let store: EventStore
    let appender: GroupCommitAppender
    let readYourWrites: ReadYourWrites
    let thresholds: @Sendable () async throws -> SeverityThresholds
    let timeTravel: TimeTravel

    func addRoutes(to router: Router<Context>) {
        let events = router.group("/api/events")
        events.get(use: list)
        events.get("stats", use: stats)
        events.get("search", use: search)
        events.get("export", use: export)
        events.get("{event_id}", use: get)
        events.patch("{event_id}", use: review)
        events.get("{event_id}/detections", use: detections)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let page = try PageRequest(query)
        let filter = try SecurityEventFilter(query)
        let thresholds = try await thresholds()
        return page.response(try await events.list(filter, thresholds: thresholds, page: page.bounds), key: "events")
    }

    @Sendable func get(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.integerID("event_id")
        if let asOf = try AsOf(QueryParameters(request)) {
            let folded = try await asOf.read { try await timeTravel.securityEvent(id, at: $0) }
            return try asOf.itemResponse(folded, notFound: "Event \(id) not found")
        }
        return try await item(id)
    }

    /// The event as the read model shows it, with a review just written (`reviewed`, `notes`)
    /// applied over it in case the projection has not caught up.
    private func item(_ id: Int64, reviewed: Bool? = nil, notes: String?? = nil) async throws -> Response {
        let thresholds = try await thresholds()
        return try itemResponse(
            try await events.item(id, thresholds: thresholds, reviewed: reviewed, notes: notes),
            notFound: "Event \(id) not found")
    }

    /// `PATCH /api/events/{id}` `{reviewed?, notes?}`: appends `SecurityEventReviewed`, then
    /// answers with the event as the read model shows it after the write.
    @Sendable func review(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.integerID("event_id")
        var body = try await JSONBody.parse(request, context: context)
        let reviewed = body.bool("reviewed")
        // Absent: unchanged; null: cleared.
        let notes: String?? =
            body.isNull("notes") ? .some(nil) : body.string("notes", length: 0...10_000, multiline: true).map { $0 }
        try body.validate()
        try await events.requireVisible(id)
        if try await changesReview(id, reviewed: reviewed, notes: notes) {
            try await appender.appendCommand(
                SecurityEventReviewed(id: id, reviewed: reviewed, notes: notes), expected: .streamExists,
                request: request, readYourWrites: readYourWrites, waitFor: ["security_events"],
                conflict: APIError.notFound("Event \(id) not found"))
        }
        return try await item(id, reviewed: reviewed, notes: notes)
    }

    /// Whether a review of `reviewed` and `notes` (nil: unchanged) changes what the event's
    /// stream holds: a review that changes nothing appends nothing, so the audit trail records
    /// no change no one made (as a camera `PATCH` that changes nothing). Decided on the stream,
    /// not the lagging read model. A review appended by another request after this read does
    /// not make the decision wrong: this request comes first in the log's order, then that one.
    private func changesReview(_ id: Int64, reviewed: Bool?, notes: String??) async throws -> Bool {
        guard reviewed != nil || notes != nil else { return false }
        let (current, _) = try await store.folded(SecurityEvents.stream(id), SecurityEvent.fold)
        guard let current else { return true }
        return reviewed.map { $0 != current.reviewed } ?? false || notes.map { $0 != current.notes } ?? false
    }

    @Sendable func detections(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.integerID("event_id")
        let page = try PageRequest(QueryParameters(request))
        try await events.requireVisible(id)
        return page.response(try await events.detections(of: id, page: page.bounds), key: "detections")
    }

    /// `{total_events, events_by_risk_level: {critical, high, medium, low}, events_by_camera}`.
    @Sendable func stats(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let (start, end) = try query.dateRange()
        let thresholds = try await thresholds()
        return jsonResponse(
            try await events.stats(camera: query.string("camera_id"), start: start, end: end, thresholds: thresholds))
    }

    /// `GET /api/events/search?q=`: PostgreSQL full-text search (web-search syntax: words,
    /// "phrases", `or`, `-not`) over summary, reasoning and object types, best match first.
    @Sendable func search(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        guard let text = query.string("q") else {
            throw ValidationError(location: ["query", "q"], message: "Field required", type: "missing")
        }
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ValidationError(
                location: ["query", "q"], message: "String should have at least 1 character", type: "string_too_short")
        }
        let limit = try query.integer("limit", default: 50, in: 1...1000)
        let offset = try query.integer("offset", default: 0, in: 0...Int(Int32.max))
        let filter = try SecurityEventFilter(query)
        let thresholds = try await thresholds()
        let results = try await events.search(
            text, filter: filter, thresholds: thresholds, limit: limit, offset: offset)
        var body = JSONWriter()
        body.object { object in
            object.array("results") { array in for item in results.items { array.raw(json: item) } }
            object.field("total_count", results.total)
            object.field("limit", limit)
            object.field("offset", offset)
        }
        return body.response()
    }

    /// `GET /api/events/export`: the filtered list as CSV, streamed in keyset batches.
    @Sendable func export(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let filter = try SecurityEventFilter(query)
        let thresholds = try await thresholds()
        let events = self.events
        let stamp = Date().formatted(
            .verbatim(
                "\(year: .defaultDigits)\(month: .twoDigits)\(day: .twoDigits)_\(hour: .twoDigits(clock: .twentyFourHour, hourCycle: .zeroBased))\(minute: .twoDigits)\(second: .twoDigits)",
                timeZone: .gmt, calendar: Calendar(identifier: .gregorian)))
        var headers = HTTPFields()
        headers[.contentType] = "text/csv; charset=utf-8"
        headers[.contentDisposition] = "attachment; filename=\"events_export_\(stamp).csv\""
        let body = ResponseBody { writer in
            var buffer = ByteBuffer()
            CSV.row(
                [
                    "event_id", "camera_name", "started_at", "ended_at", "risk_score", "risk_level", "summary",
                    "detection_count", "reviewed",
                ], to: &buffer)
            try await writer.write(buffer)
            var after: (time: String, id: Int64)?
            while true {
                let rows = try await events.export(filter, thresholds: thresholds, after: after)
                guard let last = rows.last else { break }
                buffer.clear()
                for row in rows {
                    CSV.row(
                        [
                            String(row.id), row.cameraName, row.startedAt, row.endedAt ?? "", row.riskScore ?? "",
                            row.riskLevel ?? "", row.summary ?? "", String(row.detectionCount),
                            row.reviewed ? "Yes" : "No",
                        ], to: &buffer)
                }
                try await writer.write(buffer)
                after = (last.startedAt, last.id)
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}

/// CSV (RFC 4180) that spreadsheets can't be tricked by: a cell that starts like a formula
/// (`= + - @`, tab, carriage return) gets a leading `'`.
enum CSV {
    static func cell(_ value: String) -> String {
        var text = value
        if let first = text.unicodeScalars.first, "=+-@\t\r".unicodeScalars.contains(first) { text = "'" + text }
        // By scalar: "\r\n" is one Character, equal to neither "\r" nor "\n".
        if text.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
            text = "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return text
    }

    static func row(_ cells: [String], to buffer: inout ByteBuffer) {
        buffer.writeString(cells.map(cell).joined(separator: ","))
        buffer.writeString("\r\n")
    }
}
