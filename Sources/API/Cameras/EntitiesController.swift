import Domain
import EventStore
import Foundation
import Hummingbird
import Projections

/// `/api/entities`: what re-identification workers report (`POST /api/entities/sightings`), the
/// entities it tracks (list, one, history), and their trust status (`PATCH`). An entity is a
/// stream of its own (`entity-<id>`).
struct EntitiesController<Context: RequestContext> {
    let entities: EntitiesReadModel
    let cameras: KnownCameras
    let store: EventStore
    let appender: GroupCommitAppender
    let readYourWrites: ReadYourWrites
    let eventTimes: EventTimeWindow

    func addRoutes(to router: Router<Context>) {
        let group = router.group("/api/entities")
        group.get(use: list)
        group.post("sightings", use: sighting)
        group.get("{entity_id}", use: get)
        group.patch("{entity_id}", use: trust)
        group.get("{entity_id}/history", use: history)
    }

    /// `entity_type`, `camera_id` (ever seen by), `since` (seen at or after); most recently
    /// seen first, cursor-paginated under `entities`.
    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let page = try PageRequest(query, idIsInteger: false)
        let type = try query.choice("entity_type", EntityType.self)
        return page.response(
            try await entities.list(
                type: type?.rawValue, camera: query.string("camera_id"), since: try query.date("since"),
                page: page.bounds), key: "entities")
    }

    @Sendable func get(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.text("entity_id")
        return try itemResponse(try await entities.item(id), notFound: "Entity \(id) not found")
    }

    /// `limit` (1–1000, 100) and `offset` over the appearances, oldest first.
    @Sendable func history(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.text("entity_id")
        let query = QueryParameters(request)
        let limit = try query.integer("limit", default: 100, in: 1...1000)
        let offset = try query.integer("offset", default: 0, in: 0...1_000_000)
        return try itemResponse(
            try await entities.history(id, limit: limit, offset: offset), notFound: "Entity \(id) not found")
    }

    /// `{entity_id?` (absent or `"new"`: a new entity), `entity_type` (required for a new one; for
    /// a known one it must be its type), `camera_id, detection_id?, similarity?` (0–1),
    /// `seen_at?` (now), `attributes?}` → `201 {entity_id, is_new, entity}`.
    @Sendable func sighting(_ request: Request, context: Context) async throws -> Response {
        var body = try await JSONBody.parse(request, context: context)
        let given = body.string("entity_id", length: 1...100)
        let isNew = given == nil || given == "new"
        let type = body.choice("entity_type", EntityType.self)
        if isNew && type == nil && !body.has("entity_type") { body.fail("entity_type", "Field required", "missing") }
        let camera = body.string("camera_id", required: true, length: 1...Camera.maxIDLength)
        let detection = body.integer("detection_id", in: 1...Int(Int64.max))
        let similarity = body.number("similarity", in: 0...1)
        let seenAt = body.eventTime("seen_at", window: eventTimes)
        let attributes = body.object("attributes")
        if let attributes, attributes.count > 50 {
            body.fail("attributes", "Value error, at most 50 attributes", "value_error")
        }
        if let camera, body.issues.isEmpty, try await cameras.known([camera]).isEmpty {
            body.fail(KnownCameras.unknown(camera, at: ["body", "camera_id"]))
        }
        try body.validate()
        guard let camera else { throw ValidationError([]) }
        let id = isNew ? UUID.random().uuidString.lowercased() : given!
        var entityType = type ?? .other
        var expected = ExpectedVersion.noStream
        if !isNew {
            // Appended at any version: a sighting is a fact of its own, and what it is checked
            // against here (the entity's type) never changes. Expecting the version read made
            // concurrent sightings of one entity 409 each other (23 of 25: session 47's sweep).
            let (entity, _) = try await store.folded(Entity.stream(id), Entity.fold)
            guard let entity else { throw APIError.notFound("Entity \(id) not found") }
            if let type, type != entity.type {
                throw APIError.conflict("Entity \(id) is a \(entity.type.rawValue), not a \(type.rawValue)")
            }
            entityType = entity.type
            expected = .any
        }
        try await appender.appendCommand(
            EntitySighted(
                entityId: id, entityType: entityType, cameraId: camera, detectionId: detection.map(Int64.init),
                similarity: similarity, seenAt: seenAt ?? Date(), attributes: attributes),
            expected: expected, request: request, readYourWrites: readYourWrites, waitFor: ["entities"],
            conflict: APIError.conflict("Entity \(id) was changed by another request; retry"))
        var writer = JSONWriter()
        let summary = try await entities.item(id)
        writer.object { object in
            object.field("entity_id", id)
            object.field("is_new", isNew)
            if let summary { object.raw("entity", json: summary) } else { object.field("entity", nil as String?) }
        }
        return writer.response(status: .created)
    }

    /// `{trust_status}` (trusted, untrusted, unknown) → the entity.
    @Sendable func trust(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.text("entity_id")
        var body = try await JSONBody.parse(request, context: context)
        let status = body.choice("trust_status", TrustStatus.self)
        if !body.has("trust_status") { body.fail("trust_status", "Field required", "missing") }
        try body.validate()
        guard let status else { throw ValidationError([]) }
        let (entity, version) = try await store.folded(Entity.stream(id), Entity.fold)
        guard let entity else { throw APIError.notFound("Entity \(id) not found") }
        if entity.trust != status {
            try await appender.appendCommand(
                EntityTrustChanged(entityId: id, trustStatus: status, previous: entity.trust, changedAt: Date()),
                expected: .exact(version), request: request, readYourWrites: readYourWrites, waitFor: ["entities"],
                conflict: APIError.conflict("Entity \(id) was changed by another request; retry"))
        } else {
            try await readYourWrites.wait(for: ["entities"], toSee: Entity.stream(id), atVersion: version)
        }
        return try itemResponse(try await entities.item(id), notFound: "Entity \(id) not found")
    }
}
