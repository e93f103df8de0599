import EventStore
import Hummingbird

/// The raw event log, for clients that consume the log itself.
///
/// - `GET /api/log?after=&limit=&types=&stream_prefix=`: events after a checkpoint, in log
///   order; `next_checkpoint` is where to continue (it moves past filtered-out events too).
/// - `GET /api/streams/{stream}?from_version=&limit=`: one stream in version order.
struct LogController<Context: RequestContext> {
    let store: EventStore

    func addRoutes(to router: Router<Context>) {
        router.get("/api/log", use: log)
        router.get("/api/streams/{stream}", use: stream)
    }

    @Sendable func log(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let limit = try query.integer("limit", default: 100, in: 1...1000)
        var after = Checkpoint.start
        if let token = query.string("after"), !token.isEmpty {
            after = try AsOf.checkpoint(token)
        }
        let filter = LogFilter(types: query.list("types"), streamPrefix: query.string("stream_prefix"))
        // One more than asked tells whether more are readable right now.
        let page: LogPage
        do {
            page = try await store.read(after: after, filter: filter, limit: limit + 1)
        } catch let error as LogReadError {
            throw AsOf.notReadable(error)
        }
        let hasMore = page.events.count > limit
        let events = page.events.prefix(limit)
        let next = hasMore ? events[events.endIndex - 1].checkpoint : page.next

        var body = JSONWriter()
        body.object { object in
            object.array("events") { array in
                for event in events { array.object { $0.event(event) } }
            }
            object.field("count", events.count)
            object.field("limit", limit)
            object.field("after", after.token)
            object.field("next_checkpoint", next.token)
            object.field("has_more", hasMore)
        }
        return body.response()
    }

    @Sendable func stream(_ request: Request, context: Context) async throws -> Response {
        let name = try context.parameters.text("stream")
        let query = QueryParameters(request)
        let limit = try query.integer("limit", default: 100, in: 1...1000)
        let fromVersion = try query.integer("from_version", default: 0, in: 0...Int(Int64.max))
        guard let page = try await store.readStream(name, fromVersion: Int64(fromVersion), limit: limit + 1) else {
            throw APIError.notFound("Stream \(name) not found")
        }
        // A version without events from the start: retention took them all (the stream row
        // keeps its version, so that it takes no more events).
        if page.events.isEmpty, fromVersion == 0 {
            throw APIError.notFound(
                "Stream \(name) was archived by retention: its events are in the archive's segments")
        }
        let hasMore = page.events.count > limit
        let events = page.events.prefix(limit)

        var body = JSONWriter()
        body.object { object in
            object.field("stream", page.stream)
            object.field("version", page.version)
            object.array("events") { array in
                for event in events { array.object { $0.event(event) } }
            }
            object.field("count", events.count)
            object.field("limit", limit)
            object.field("next_version", events.last?.version ?? Int64(fromVersion))
            object.field("has_more", hasMore)
        }
        return body.response()
    }
}
