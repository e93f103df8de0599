import Domain
import EventStore
import Foundation
import Hummingbird
import PostgresNIO
import Projections

/// `/api/cameras`: list, one, register (201), update, remove (soft: 204).
///
/// Commands are decided against the camera's own stream (`camera-<id>`), folded to its current
/// state, and appended with that stream's version as the expected one: two concurrent
/// registrations of one id can't both win. Name and folder uniqueness across cameras is checked
/// against the read model (a best effort: it can't see a write the projection hasn't applied).
struct CamerasController<Context: RequestContext> {
    let store: EventStore
    let appender: GroupCommitAppender

    var client: PostgresClient { store.client }
    var logger: Logger { store.logger }

    static var list: ListSpec {
        ListSpec(
            key: "cameras", table: "cameras", timeColumn: "created_at", idIsInteger: false,
            visible: "t.removed_at IS NULL")
    }

    static var item: String {
        """
        json_build_object(
            'id', t.id, 'name', t.name, 'folder_path', t.folder_path, 'status', t.status,
            'created_at', vigil_ts(t.created_at), 'last_seen_at', vigil_ts(t.last_seen_at))::text
        """
    }

    func addRoutes(to router: Router<Context>) {
        let cameras = router.group("/api/cameras")
        cameras.get(use: list)
        cameras.post(use: create)
        cameras.get("{camera_id}", use: get)
        cameras.patch("{camera_id}", use: update)
        cameras.delete("{camera_id}", use: remove)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let page = try PageRequest(query, idIsInteger: false)
        var sql = SQLBuilder()
        if let status = try query.choice("status", CameraStatus.self) {
            sql.condition("t.status = \(sql.bind(status.rawValue))")
        }
        return try await listPage(Self.list, item: Self.item, filters: sql, page: page, client: client, logger: logger)
    }

    @Sendable func get(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.require("camera_id")
        return try await itemResponse(notFound: "Camera \(id) not found", client: client, logger: logger) { sql in
            "SELECT \(Self.item) FROM cameras t WHERE t.id = \(sql.bind(id)) AND t.removed_at IS NULL"
        }
    }

    @Sendable func create(_ request: Request, context: Context) async throws -> Response {
        var body = try await JSONBody.parse(request, context: context)
        let name = body.string("name", required: true, length: 1...255)
        let folderPath = body.string("folder_path", required: true, length: 1...500)
        let status = body.choice("status", CameraStatus.self) ?? .online
        Self.checkNames(name: name, folderPath: folderPath, in: &body)
        try body.validate()
        guard let name, let folderPath else { return Response(status: .unprocessableContent) }
        let id = Camera.normalizedID(name)

        let (current, version) = try await load(id)
        if current != nil { throw APIError(.conflict, "Camera \(id) already exists") }
        try await requireUnique(name: name, folderPath: folderPath, except: id)
        let event = CameraRegistered(id: id, name: name, folderPath: folderPath, status: status, registeredAt: Date())
        try await append(event, expected: version, request: request, waitFor: ["cameras"])
        // From the stream, not the read model: the camera exists once its event is stored.
        let camera = Camera(
            id: id, name: name, folderPath: folderPath, status: status, registeredAt: event.registeredAt)
        return try await response(camera, status: .created)
    }

    @Sendable func update(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.require("camera_id")
        var body = try await JSONBody.parse(request, context: context)
        let name = body.string("name", length: 1...255)
        let folderPath = body.string("folder_path", length: 1...500)
        let status = body.choice("status", CameraStatus.self)
        Self.checkNames(name: name, folderPath: folderPath, in: &body)
        try body.validate()

        let (current, version) = try await load(id)
        guard let current else { throw APIError.notFound("Camera \(id) not found") }
        var camera = current
        if let event = current.update(name: name, folderPath: folderPath, status: status, at: Date()) {
            try await requireUnique(name: event.name, folderPath: event.folderPath, except: id)
            try await append(event, expected: version, request: request, waitFor: ["cameras"])
            camera = current.applying(event)
        }
        return try await response(camera)
    }

    @Sendable func remove(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.require("camera_id")
        let (current, version) = try await load(id)
        guard current != nil else { throw APIError.notFound("Camera \(id) not found") }
        try await append(
            CameraRemoved(id: id, removedAt: Date()), expected: version, request: request,
            waitFor: ["cameras", "detections", "security_events"])
        return Response(status: .noContent)
    }

    /// A camera as its stream has it, with `last_seen_at` from the read model.
    private func response(_ camera: Camera, status: HTTPResponse.Status = .ok) async throws -> Response {
        // The event's own rendering of the time (milliseconds), as the read model stores it.
        let registered = EventCoding.timestamp(camera.registeredAt)
        let rows = try await client.guardedQuery(
            """
            SELECT vigil_ts(last_seen_at), vigil_ts(\(registered)::timestamptz)
            FROM (SELECT 1) AS one LEFT JOIN cameras ON id = \(camera.id) AND removed_at IS NULL
            """,
            logger: logger)
        var times: (lastSeen: String?, created: String?) = (nil, nil)
        for try await row in rows.decode((String?, String?).self) { times = row }
        var body = JSONWriter()
        body.object { object in
            object.field("id", camera.id)
            object.field("name", camera.name)
            object.field("folder_path", camera.folderPath)
            object.field("status", camera.status.rawValue)
            object.field("created_at", times.created)
            object.field("last_seen_at", times.lastSeen)
        }
        return body.response(status: status)
    }

    /// Value errors pydantic validators would raise.
    private static func checkNames(name: String?, folderPath: String?, in body: inout JSONBody) {
        if let name, Camera.normalizedID(name).isEmpty {
            body.fail("name", "Value error, name must contain at least one letter or digit", "value_error")
        }
        if let folderPath, folderPath.split(separator: "/").contains("..") {
            body.fail("folder_path", "Value error, Path traversal (..) is not allowed in folder_path", "value_error")
        }
    }

    /// The camera's current state and its stream's version.
    private func load(_ id: String) async throws -> (Camera?, Int64) {
        guard let page = try await store.readStream(Camera.stream(id)) else { return (nil, 0) }
        return (try Camera.fold(page.events.map { ($0.type, $0.data) }), page.version)
    }

    private func requireUnique(name: String?, folderPath: String?, except id: String) async throws {
        guard name != nil || folderPath != nil else { return }
        let rows = try await client.guardedQuery(
            """
            SELECT name = \(name), folder_path = \(folderPath) FROM cameras
            WHERE removed_at IS NULL AND id <> \(id) AND (name = \(name) OR folder_path = \(folderPath))
            LIMIT 1
            """, logger: logger)
        for try await (sameName, sameFolder) in rows.decode((Bool?, Bool?).self) {
            if sameName == true { throw APIError(.conflict, "A camera named '\(name ?? "")' already exists") }
            if sameFolder == true {
                throw APIError(.conflict, "A camera already uses folder_path '\(folderPath ?? "")'")
            }
        }
    }

    private func append(
        _ event: some DomainEvent, expected version: Int64, request: Request, waitFor projections: [String]
    ) async throws {
        try await appender.appendCommand(
            event, expected: version == 0 ? .noStream : .exact(version), request: request, store: store,
            waitFor: projections, conflict: APIError(.conflict, "Camera was changed by another request; retry"))
    }
}
