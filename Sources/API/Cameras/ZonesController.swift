import Domain
import EventStore
import Foundation
import Hummingbird
import Projections

/// `/api/cameras/{camera_id}/zones`: a camera's zones (list, one, create 201, update, delete 204).
///
/// Each zone is a stream of its own (`zone-<id>`): a change is decided against the stream folded
/// to the zone's current definition and appended at that stream's version, and its event carries
/// the previous definition, so the audit trail shows old and new values. The camera must exist
/// (and not be removed). Coordinates are `[x, y]` points normalised to 0..1: a polygon needs 3 or
/// more, a rectangle exactly 4; else 422.
struct ZonesController<Context: RequestContext> {
    let zones: ZonesReadModel
    let cameras: CamerasReadModel
    let store: EventStore
    let appender: GroupCommitAppender
    let readYourWrites: ReadYourWrites

    func addRoutes(to router: Router<Context>) {
        let group = router.group("/api/cameras/{camera_id}/zones")
        group.get(use: list)
        group.post(use: create)
        group.get("{zone_id}", use: get)
        group.put("{zone_id}", use: update)
        group.delete("{zone_id}", use: delete)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let camera = try await knownCamera(context)
        let query = QueryParameters(request)
        let enabled = try query.bool("enabled")
        let page = try PageRequest(query, idIsInteger: false)
        return page.response(
            try await zones.list(camera: camera, enabled: enabled, page: page.bounds), key: "zones")
    }

    @Sendable func get(_ request: Request, context: Context) async throws -> Response {
        let camera = try await knownCamera(context)
        let id = try context.parameters.text("zone_id")
        return try itemResponse(try await zones.item(camera: camera, id: id), notFound: "Zone \(id) not found")
    }

    @Sendable func create(_ request: Request, context: Context) async throws -> Response {
        let camera = try await knownCamera(context)
        var body = try await JSONBody.parse(request, context: context)
        let name = body.string("name", required: true, length: 1...100)
        let type = body.choice("zone_type", ZoneType.self) ?? .other
        let coordinates = Self.coordinates(&body, required: true)
        let shape = body.choice("shape", ZoneShape.self) ?? .rectangle
        let color = Self.color(&body) ?? ZoneDefinition.defaultColor
        let enabled = body.bool("enabled") ?? true
        let priority = body.integer("priority", in: ZoneDefinition.priorities) ?? 0
        if let coordinates { Self.check(coordinates, shape, &body) }
        try body.validate()
        guard let name, let coordinates else { throw ValidationError([]) }
        let zone = ZoneDefinition(
            name: name, zoneType: type, coordinates: coordinates, shape: shape, color: color, enabled: enabled,
            priority: priority)
        let id = UUID.random().uuidString.lowercased()
        let event = ZoneCreated(id: id, cameraId: camera, zone: zone, createdAt: Date())
        try await appender.appendCommand(
            event, expected: .noStream, request: request, readYourWrites: readYourWrites, waitFor: ["zones"],
            conflict: APIError.conflict("Zone \(id) already exists"))
        return try itemResponse(
            try await zones.item(camera: camera, id: id), notFound: "Zone \(id) not found", status: .created)
    }

    /// Any subset of the fields; the result must still be a valid zone.
    @Sendable func update(_ request: Request, context: Context) async throws -> Response {
        let camera = try await knownCamera(context)
        let id = try context.parameters.text("zone_id")
        var body = try await JSONBody.parse(request, context: context)
        let name = body.string("name", length: 1...100)
        let type = body.choice("zone_type", ZoneType.self)
        let coordinates = Self.coordinates(&body, required: false)
        let shape = body.choice("shape", ZoneShape.self)
        let color = Self.color(&body)
        let enabled = body.bool("enabled")
        let priority = body.integer("priority", in: ZoneDefinition.priorities)
        try body.validate()

        let (current, version) = try await load(id)
        guard let current, current.cameraId == camera else { throw APIError.notFound("Zone \(id) not found") }
        var next = current.definition
        if let name { next.name = name }
        if let type { next.zoneType = type }
        if let coordinates { next.coordinates = coordinates }
        if let shape { next.shape = shape }
        if let color { next.color = color }
        if let enabled { next.enabled = enabled }
        if let priority { next.priority = priority }
        Self.check(next.coordinates, next.shape, &body)
        try body.validate()
        if next != current.definition {
            let event = ZoneUpdated(
                id: id, cameraId: camera, zone: next, previous: current.definition, updatedAt: Date())
            try await appender.appendCommand(
                event, expected: .exact(version), request: request, readYourWrites: readYourWrites,
                waitFor: ["zones"], conflict: APIError.conflict("Zone \(id) was changed by another request; retry"))
        } else {
            try await readYourWrites.wait(for: ["zones"], toSee: Zone.stream(id), atVersion: version)
        }
        return try itemResponse(try await zones.item(camera: camera, id: id), notFound: "Zone \(id) not found")
    }

    @Sendable func delete(_ request: Request, context: Context) async throws -> Response {
        let camera = try await knownCamera(context)
        let id = try context.parameters.text("zone_id")
        let (current, version) = try await load(id)
        guard let current, current.cameraId == camera else { throw APIError.notFound("Zone \(id) not found") }
        try await appender.appendCommand(
            ZoneDeleted(id: id, cameraId: camera, deletedAt: Date()), expected: .exact(version), request: request,
            readYourWrites: readYourWrites, waitFor: ["zones"],
            conflict: APIError.conflict("Zone \(id) was changed by another request; retry"))
        return Response(status: .noContent)
    }

    /// The zone as its stream folds, and the stream's version.
    private func load(_ id: String) async throws -> (Zone?, Int64) {
        try await store.folded(Zone.stream(id), Zone.fold)
    }

    private func knownCamera(_ context: Context) async throws -> String {
        let id = try context.parameters.text("camera_id")
        guard try await cameras.item(id) != nil else { throw APIError.notFound("Camera \(id) not found") }
        return id
    }

    /// `[[x, y], …]`: a list of pairs of numbers (their range is ``check(_:_:_:)``'s).
    static func coordinates(_ body: inout JSONBody, required: Bool) -> [[Double]]? {
        guard let value = body.value("coordinates") else {
            if required { body.fail("coordinates", "Field required", "missing") }
            return nil
        }
        guard case .array(let points) = value else {
            body.fail("coordinates", "Input should be a valid list", "list_type")
            return nil
        }
        var result: [[Double]] = []
        for (index, point) in points.enumerated() {
            guard case .array(let pair) = point, pair.count == 2, case .number(let x) = pair[0],
                case .number(let y) = pair[1]
            else {
                body.fail("coordinates", "Value error, point \(index) must be [x, y], two numbers", "value_error")
                return nil
            }
            result.append([x, y])
        }
        return result
    }

    static func check(_ coordinates: [[Double]], _ shape: ZoneShape, _ body: inout JSONBody) {
        if let problem = ZoneDefinition.problem(coordinates: coordinates, shape: shape) {
            body.fail("coordinates", "Value error, \(problem)", "value_error")
        }
    }

    static func color(_ body: inout JSONBody) -> String? {
        guard let color = body.string("color", length: 7...7) else { return nil }
        guard ZoneDefinition.isColor(color) else {
            body.fail("color", "Value error, a color is #RRGGBB", "value_error")
            return nil
        }
        return color.uppercased()
    }
}
