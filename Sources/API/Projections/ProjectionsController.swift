import EventStore
import Foundation
import Hummingbird
import Projections

/// `GET /api/projections`: where every projection stands — checkpoint, head, lag in events and
/// seconds, state (`live` while an instance holds its lease, `rebuilding` with progress and ETA
/// while a new generation is built), last error.
struct ProjectionsController<Context: RequestContext> {
    let store: EventStore
    /// What this server registers: the read models and the reactors.
    let projections: [any Projection]

    func addRoutes(to router: Router<Context>) {
        router.get("/api/projections", use: list)
        router.post("/api/projections/{name}/rebuild", use: rebuild)
        router.get("/api/projections/{name}/parked", use: parked)
        router.post("/api/projections/{name}/parked/retry", use: retryParked)
    }

    /// The events the live generation could not apply (resolved ones too, with `resolved_at`).
    @Sendable func parked(_ request: Request, context: Context) async throws -> Response {
        let name = try knownName(context)
        let parked = try await store.parkedEvents(of: name)
        let timestamp = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        var body = JSONWriter()
        body.object { object in
            object.field("name", name)
            object.array("parked") { array in
                for event in parked {
                    array.object { item in
                        item.field("checkpoint", event.checkpoint.token)
                        item.field("event_id", event.eventID.uuidString.lowercased())
                        item.field("stream", event.stream)
                        item.field("type", event.type)
                        item.field("error", event.error)
                        item.field("attempts", Int64(event.attempts))
                        item.field("parked_at", event.parkedAt.formatted(timestamp))
                        item.field("last_retry_at", event.lastRetryAt?.formatted(timestamp))
                        item.field("resolved_at", event.resolvedAt?.formatted(timestamp))
                    }
                }
            }
            object.field("count", parked.count)
            object.field("unresolved", parked.filter { $0.resolvedAt == nil }.count)
        }
        return body.response()
    }

    /// Asks the live runner to apply the parked events again (202): after a fix, they apply and
    /// are marked resolved; those that still fail stay parked with the new error.
    @Sendable func retryParked(_ request: Request, context: Context) async throws -> Response {
        let name = try knownName(context)
        let count = try await store.retryParkedEvents(of: name)
        var body = JSONWriter()
        body.object { object in
            object.field("name", name)
            object.field("retrying", count)
            object.field("status_url", "/api/projections/\(name)/parked")
        }
        return body.response(status: .accepted)
    }

    private func knownName(_ context: Context) throws -> String { try known(context).name }

    /// The registered projection the path names, or a 404.
    private func known(_ context: Context) throws -> any Projection {
        let name = try context.parameters.text("name")
        guard let projection = projections.first(where: { $0.name == name }) else {
            throw APIError.notFound("Projection \(name) not found")
        }
        return projection
    }

    /// Starts a rebuild into a new generation (202); the live one keeps serving until the new
    /// one has caught up and is swapped in. Asking again while one runs returns the same one.
    @Sendable func rebuild(_ request: Request, context: Context) async throws -> Response {
        let projection = try known(context)
        let name = projection.name
        let generation: Int32
        do {
            generation = try await store.requestRebuild(of: projection)
        } catch let error as ProjectionError {
            guard case .reactorNotRebuildable = error else { throw error }
            throw APIError.conflict(error.description)
        }
        var body = JSONWriter()
        body.object { object in
            object.field("name", name)
            object.field("state", "rebuilding")
            object.field("generation", Int64(generation))
            object.field("status_url", "/api/projections")
        }
        return body.response(status: .accepted)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let statuses = try await store.projectionStatuses()
        let timestamp = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        var body = JSONWriter()
        body.object { object in
            object.array("projections") { array in
                for status in statuses {
                    array.object { item in
                        item.field("name", status.name)
                        item.field("state", status.state)
                        item.field("health", status.health)
                        item.field("generation", Int64(status.generation))
                        item.field("checkpoint", status.checkpoint.token)
                        item.field("head", status.head.token)
                        item.field("lag_events", status.lagEvents)
                        item.field("lag_seconds", status.lagSeconds)
                        item.field("events_applied", status.eventsApplied)
                        item.field("updated_at", status.updatedAt.formatted(timestamp))
                        item.field("last_error", status.lastError)
                        item.field("last_error_at", status.lastErrorAt?.formatted(timestamp))
                        item.field("parked_events", status.parkedEvents)
                        if let rebuild = status.rebuild {
                            item.object("rebuild") { object in
                                object.field("generation", Int64(rebuild.generation))
                                object.field("checkpoint", rebuild.checkpoint.token)
                                object.field("events_applied", rebuild.eventsApplied)
                                object.field("progress", rebuild.progress)
                                object.field("eta_seconds", rebuild.estimatedSecondsLeft)
                                object.field("started_at", rebuild.startedAt.formatted(timestamp))
                                object.field("parked_events", rebuild.parkedEvents)
                                object.field("last_error", rebuild.lastError)
                            }
                        } else {
                            item.field("rebuild", nil as String?)
                        }
                    }
                }
            }
            object.field("count", statuses.count)
        }
        return body.response()
    }
}
