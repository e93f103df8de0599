import Domain
import EventStore
import Foundation
import Hummingbird
import Projections

/// `/api/cameras`: list, one, register (201), update, remove (soft: 204).
///
/// Commands are decided against the camera's own stream (`camera-<id>`), folded to its current
/// state, and appended with that stream's version as the expected one: two concurrent
/// registrations of one id can't both win. Name and folder uniqueness across cameras is decided
/// by the log too: a camera holds its name and folder path through reservation streams
/// (`unique-camera_name-<id>`, `unique-camera_folder_path-<path>`), claimed and released in the
/// same transaction as the camera's own event, each at its expected version. The read-model
/// check before it only gives the common case its answer early (and covers cameras registered
/// before reservations existed).
struct CamerasController<Context: RequestContext> {
    let cameras: CamerasReadModel
    let store: EventStore
    let appender: GroupCommitAppender
    let readYourWrites: ReadYourWrites
    let timeTravel: TimeTravel
    /// Camera commands of this process, one at a time (see ``SerialGate``).
    let commands = SerialGate()

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
        let status = try query.choice("status", CameraStatus.self)
        return page.response(try await cameras.list(status: status, page: page.bounds), key: "cameras")
    }

    @Sendable func get(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.text("camera_id")
        if let asOf = try AsOf(QueryParameters(request)) {
            let folded = try await asOf.read { try await timeTravel.camera(id, at: $0) }
            return try asOf.itemResponse(folded, notFound: "Camera \(id) not found")
        }
        return try itemResponse(try await cameras.item(id), notFound: "Camera \(id) not found")
    }

    @Sendable func create(_ request: Request, context: Context) async throws -> Response {
        try await commands.run { try await register(request, context: context) }
    }

    @Sendable func update(_ request: Request, context: Context) async throws -> Response {
        try await commands.run { try await change(request, context: context) }
    }

    @Sendable func remove(_ request: Request, context: Context) async throws -> Response {
        try await commands.run { try await unregister(request, context: context) }
    }

    private func register(_ request: Request, context: Context) async throws -> Response {
        var body = try await JSONBody.parse(request, context: context)
        let name = body.string("name", required: true, length: 1...255)
        let rawFolderPath = body.string("folder_path", required: true, length: 1...500)
        let status = body.choice("status", CameraStatus.self) ?? .online
        Self.checkNames(name: name, folderPath: rawFolderPath, in: &body)
        try body.validate()
        guard let name, let rawFolderPath else { return Response(status: .unprocessableContent) }
        let folderPath = Camera.normalizedFolderPath(rawFolderPath)
        let id = Camera.normalizedID(name)

        let (current, version) = try await store.camera(id)
        if current != nil { throw APIError(.conflict, "Camera \(id) already exists") }
        try await requireUnique(name: name, folderPath: folderPath, except: id)
        let now = Date()
        let event = CameraRegistered(id: id, name: name, folderPath: folderPath, status: status, registeredAt: now)
        var writes = [Write(event, expected: version)]
        let camera = Camera(id: id, name: name, folderPath: folderPath, status: status, registeredAt: now)
        for (scope, value) in camera.reservations {
            let (reservation, reservationVersion) = try await loadReservation(scope, value)
            guard reservation.isAvailable(to: id) else {
                throw Self.taken(reservation, name: name, folderPath: folderPath)
            }
            if let claim = reservation.claim(for: id, at: now) {
                writes.append(Write(claim, expected: reservationVersion))
            }
        }
        try await commit(writes, request: request, waitFor: ["cameras"], name: name, folderPath: folderPath) { _ in
            APIError(.conflict, "Camera \(id) already exists")
        }
        // From the stream, not the read model: the camera exists once its event is stored.
        return try await response(camera, status: .created)
    }

    private func change(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.text("camera_id")
        var body = try await JSONBody.parse(request, context: context)
        let name = body.string("name", length: 1...255)
        let folderPath = body.string("folder_path", length: 1...500)
        let status = body.choice("status", CameraStatus.self)
        Self.checkNames(name: name, folderPath: folderPath, in: &body)
        try body.validate()

        let (current, version) = try await store.camera(id)
        guard let current else { throw APIError.notFound("Camera \(id) not found") }
        var camera = current
        let now = Date()
        if let event = current.update(
            name: name, folderPath: folderPath.map(Camera.normalizedFolderPath), status: status, at: now)
        {
            try await requireUnique(name: event.name, folderPath: event.folderPath, except: id)
            camera = current.applying(event)
            var writes = [Write(event, expected: version)]
            // A changed name or folder: give the old value up and take the new one, atomically.
            for (old, new) in zip(current.reservations, camera.reservations) where old.value != new.value {
                let (released, releasedVersion) = try await loadReservation(old.scope, old.value)
                if let release = released.release(by: id, at: now) {
                    writes.append(Write(release, expected: releasedVersion))
                }
                let (wanted, wantedVersion) = try await loadReservation(new.scope, new.value)
                guard wanted.isAvailable(to: id) else {
                    throw Self.taken(wanted, name: camera.name, folderPath: camera.folderPath)
                }
                if let claim = wanted.claim(for: id, at: now) { writes.append(Write(claim, expected: wantedVersion)) }
            }
            try await commit(
                writes, request: request, waitFor: ["cameras"], name: camera.name, folderPath: camera.folderPath)
        }
        return try await response(camera)
    }

    private func unregister(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.text("camera_id")
        let (current, version) = try await store.camera(id)
        guard let current else { throw APIError.notFound("Camera \(id) not found") }
        let now = Date()
        // A removed camera gives its name and folder up: another camera (or this one, registered
        // again) may take them.
        var writes = [Write(CameraRemoved(id: id, removedAt: now), expected: version)]
        for (scope, value) in current.reservations {
            let (reservation, reservationVersion) = try await loadReservation(scope, value)
            if let release = reservation.release(by: id, at: now) {
                writes.append(Write(release, expected: reservationVersion))
            }
        }
        try await commit(
            writes, request: request, waitFor: ["cameras", "detections", "security_events"],
            name: current.name, folderPath: current.folderPath)
        return Response(status: .noContent)
    }

    /// A camera as its stream has it, with `last_seen_at` from the read model.
    private func response(_ camera: Camera, status: HTTPResponse.Status = .ok) async throws -> Response {
        // The event's own rendering of the time (milliseconds), as the read model stores it.
        let times = try await cameras.times(camera.id, registeredAt: EventCoding.timestamp(camera.registeredAt))
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
        if let name {
            let id = Camera.normalizedID(name)
            if id.isEmpty {
                body.fail("name", "Value error, name must contain at least one letter or digit", "value_error")
            } else if id.characterCount > Camera.maxIDLength {
                // Lower-casing can lengthen a name (`İ` is `i̇`): its id must still fit where
                // camera ids are taken.
                body.fail(
                    "name",
                    "Value error, name maps to a camera id of \(id.characterCount) characters; at most "
                        + "\(Camera.maxIDLength)", "value_error")
            }
        }
        if let folderPath, folderPath.split(separator: "/").contains("..") {
            body.fail("folder_path", "Value error, Path traversal (..) is not allowed in folder_path", "value_error")
        }
    }

    private func requireUnique(name: String?, folderPath: String?, except id: String) async throws {
        guard name != nil || folderPath != nil else { return }
        var taken = try await cameras.taken(name: name, folderPath: folderPath, except: id)
        if taken.name || taken.folderPath {
            // The read model may not have applied a removal yet (its writer answered 202 when
            // it didn't in time): decide on one that has caught up with the log, not on a stale
            // row, or not at all.
            guard
                try await store.waitForProjections(
                    ["cameras"], toReach: try await store.head(), timeout: readYourWrites.timeout)
            else {
                throw APIError(.serviceUnavailable, "The cameras read model is behind the log; retry shortly")
            }
            taken = try await cameras.taken(name: name, folderPath: folderPath, except: id)
        }
        if taken.name { throw APIError(.conflict, "A camera named '\(name ?? "")' already exists") }
        if taken.folderPath { throw APIError(.conflict, "A camera already uses folder_path '\(folderPath ?? "")'") }
    }

    /// One event of a command with its stream's expected version.
    private struct Write {
        var event: any DomainEvent
        var expected: ExpectedVersion

        init(_ event: any DomainEvent, expected version: Int64) {
            self.event = event
            self.expected = version == 0 ? .noStream : .exact(version)
        }
    }

    /// A reservation as its stream has it, and the stream's version. Only the last event
    /// decides who holds the value.
    private func loadReservation(_ scope: ReservationScope, _ value: String) async throws -> (Reservation, Int64) {
        let stream = Reservation.stream(scope, value)
        guard var page = try await store.readStream(stream) else { return (Reservation(scope: scope, value: value), 0) }
        if let last = page.events.last, last.version < page.version {
            page = try await store.readStream(stream, fromVersion: page.version - 1) ?? page
        }
        let last = page.events.suffix(1).map { ($0.type, $0.data) }
        return (try Reservation.fold(scope: scope, value: value, last), page.version)
    }

    /// The 409 for a value another camera holds.
    private static func taken(_ reservation: Reservation, name: String, folderPath: String) -> APIError {
        switch reservation.scope {
        case .cameraName: APIError(.conflict, "A camera named '\(name)' already exists")
        case .cameraFolderPath: APIError(.conflict, "A camera already uses folder_path '\(folderPath)'")
        }
    }

    /// Appends `writes` in one transaction (all or nothing, streams locked in name order), then
    /// waits for `projections` to apply them (read your writes). A stream that isn't at its
    /// expected version is a 409: a reservation's names the value, the camera's own
    /// `cameraConflict`.
    private func commit(
        _ writes: [Write], request: Request, waitFor projections: [String], name: String, folderPath: String,
        cameraConflict: (String) -> APIError = { _ in
            APIError(.conflict, "Camera was changed by another request; retry")
        }
    ) async throws {
        let metadata = EventMetadata(request)
        let requests = try writes.sorted { $0.event.stream < $1.event.stream }.map { write in
            AppendRequest(
                stream: write.event.stream, events: [try NewEvent(write.event, metadata: metadata)],
                expected: write.expected)
        }
        let checkpoint: Checkpoint?
        do {
            checkpoint = try await store.transaction { transaction in
                var last: Checkpoint?
                for result in try await transaction.appendBatch(requests) {
                    for written in try result.get().checkpoints { last = max(last ?? written, written) }
                }
                return last
            }
        } catch AppendError.wrongExpectedVersion(let stream, _, _) {
            for scope in ReservationScope.allCases where stream.hasPrefix(Reservation.stream(scope, "")) {
                throw Self.taken(Reservation(scope: scope, value: ""), name: name, folderPath: folderPath)
            }
            throw cameraConflict(stream)
        }
        if let checkpoint { try await readYourWrites.wait(for: projections, toReach: checkpoint) }
    }
}

extension EventStore {
    /// Camera `id` as its own stream tells it (nil: never registered, or removed), and the
    /// stream's version: what commands, and the detections naming it, are decided against.
    func camera(_ id: String) async throws -> (Camera?, Int64) {
        try await folded(Camera.stream(id), Camera.fold)
    }
}
