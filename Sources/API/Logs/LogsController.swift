import Domain
import Foundation
import Hummingbird
import Projections

/// `/api/logs`: operational records (the server's warnings and errors, ``LogRecorder``, and what
/// browsers send), not events: list (the seed's filters, cursor pages), stats of the day, one
/// record, and `POST /api/logs/frontend` (one entry, a JSON array, or `{"entries": […]}` of
/// 1–100; `…/frontend/batch` takes the last form).
struct LogsController<Context: RequestContext> {
    let logs: OperationalLogs
    /// The window a browser's `timestamp` must lie in (the one for event times).
    let times: EventTimeWindow

    static var maxEntries: Int { 100 }

    func addRoutes(to router: Router<Context>) {
        let group = router.group("/api/logs")
        group.get(use: list)
        group.get("stats", use: stats)
        group.get("{log_id}", use: get)
        group.post("frontend", use: frontend)
        group.post("frontend/batch", use: frontendBatch)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let filter = try Self.filter(query)
        let page = try PageRequest(query, idIsInteger: true)
        return page.response(try await logs.list(filter, page: page.bounds), key: "logs")
    }

    @Sendable func stats(_ request: Request, context: Context) async throws -> Response {
        jsonResponse(try await logs.stats(try Self.filter(QueryParameters(request))))
    }

    @Sendable func get(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.integerID("log_id")
        return try itemResponse(try await logs.item(id), notFound: "Log \(id) not found")
    }

    /// The seeds' filters: level, component, camera_id, source, search, start_date, end_date.
    static func filter(_ query: QueryParameters) throws -> LogFilterParameters {
        var level: LogRecord.Level?
        if let text = query.string("level") {
            guard let value = LogRecord.Level(rawValue: text.uppercased()) else {
                throw ValidationError(
                    location: ["query", "level"],
                    message: "Input should be " + JSONBody.alternatives(LogRecord.Level.allCases.map(\.rawValue)),
                    type: "enum")
            }
            level = value
        }
        let source = try query.choice("source", LogRecord.Source.self)
        let (start, end) = try query.dateRange()
        return LogFilterParameters(
            level: level, component: query.string("component"), cameraId: query.string("camera_id"),
            source: source, search: query.string("search"), start: start, end: end)
    }

    @Sendable func frontend(_ request: Request, context: Context) async throws -> Response {
        try await store(request, context: context, batchOnly: false)
    }

    @Sendable func frontendBatch(_ request: Request, context: Context) async throws -> Response {
        try await store(request, context: context, batchOnly: true)
    }

    /// Validates every entry (all or nothing: one bad entry is a 422 naming it) and stores them
    /// in one statement: `201 {"success": true, "count", "message"}`.
    private func store(_ request: Request, context: Context, batchOnly: Bool) async throws -> Response {
        try JSONBody.requireJSONContentType(request)
        let buffer = try await request.body.collect(upTo: BodyLimits.json)
        let body = try JSONBody.decode(buffer.readableBytesView, under: ["body"]).get()
        let entries = try Self.entries(body, batchOnly: batchOnly)
        let agent = request.headers[.userAgent].map { LogRecorder.clean($0).prefix(characters: 512) }
        var records: [LogRecord] = []
        var issues: [ValidationError.Issue] = []
        for (item, location) in entries {
            switch JSONBody.item(item, location: location) {
            case .failure(let error): issues += error.issues
            case .success(var entry):
                if let record = Self.record(&entry, userAgent: agent, times: times) { records.append(record) }
                issues += entry.issues
            }
        }
        if !issues.isEmpty { throw ValidationError(issues) }
        let count = try await logs.insert(records)
        var response = JSONWriter()
        response.object { object in
            object.field("success", true)
            object.field("count", count)
            object.field("message", "Stored \(count) log \(count == 1 ? "entry" : "entries")")
        }
        return response.response(status: .created)
    }

    /// The entries of a body, each with where it is (for its issues' `loc`): a single entry (an
    /// object without `entries`), an array of them, or `{"entries": [...]}` (the only form when
    /// `batchOnly`), 1–100 of them.
    static func entries(_ body: JSONValue, batchOnly: Bool) throws -> [(JSONValue, [String])] {
        let items: [JSONValue]
        let location: [String]
        switch body {
        case .object(let object) where object["entries"] != nil || batchOnly:
            var wrapper = JSONBody(object: object)
            guard wrapper.has("entries"), case .array(let entries)? = object["entries"] else {
                if wrapper.has("entries") {
                    wrapper.fail("entries", "Input should be a valid list", "list_type")
                } else {
                    wrapper.fail("entries", "Field required", "missing")
                }
                try wrapper.validate()
                return []
            }
            try wrapper.validate()
            (items, location) = (entries, ["body", "entries"])
        case .object:
            return [(body, ["body"])]
        case .array(let entries) where !batchOnly:
            (items, location) = (entries, ["body"])
        default:
            throw ValidationError(
                location: ["body"], message: "Input should be a valid dictionary or object to extract fields from",
                type: "model_attributes_type")
        }
        if items.isEmpty {
            throw ValidationError(
                location: location, message: "List should have at least 1 item after validation", type: "too_short")
        }
        if items.count > maxEntries {
            throw ValidationError(
                location: location, message: "List should have at most \(maxEntries) items after validation",
                type: "too_long")
        }
        return items.enumerated().map { ($1, location + [String($0)]) }
    }

    /// One entry: `level` and `message` required; `timestamp`, `component`, `context`, `url`,
    /// `user_agent` optional (the request's `User-Agent` when absent).
    static func record(_ entry: inout JSONBody, userAgent: String?, times: EventTimeWindow) -> LogRecord? {
        var level: LogRecord.Level?
        if let text = entry.string("level", required: true, length: 1...20) {
            level = LogRecord.Level(rawValue: text.uppercased())
            if level == nil {
                entry.fail(
                    "level", "Input should be " + JSONBody.alternatives(LogRecord.Level.allCases.map(\.rawValue)),
                    "enum")
            }
        }
        let message = entry.string("message", required: true, length: 1...10_000, multiline: true)
        if let message, message.contains("\u{0}") {
            entry.fail("message", "Value error, NUL characters are not allowed", "value_error")
        }
        let timestamp = entry.eventTime("timestamp", window: times)
        let component = entry.string("component", length: 1...100)
        let context = entry.object("context")
        var extra = "{}"
        if let context {
            let encoded = (try? JSONEncoder().encode(JSONValue.object(context))).map {
                String(decoding: $0, as: UTF8.self)
            }
            if let encoded, encoded.utf8.count <= LogRecorder.maxExtra, !encoded.contains("\\u0000") {
                extra = encoded
            } else {
                entry.fail(
                    "context", "Value error, must be a JSON object of at most 16 KB without NUL characters",
                    "value_error")
            }
        }
        let url = entry.string("url", length: 1...2048)
        let agent = entry.string("user_agent", length: 1...512) ?? userAgent
        guard let level, let message, entry.issues.isEmpty else { return nil }
        return LogRecord(
            loggedAt: timestamp ?? Date(), level: level, component: component ?? "frontend", message: message,
            extra: extra, source: .frontend, url: url, userAgent: agent)
    }
}
