import Domain
import EventStore
import Foundation
import Logging
import PostgresNIO

/// `audit`: who changed what, projected from the log itself (so it can't disagree with what
/// happened): one entry per review, re-analysis request, configuration and threshold change,
/// camera and API key change, and refused command (``CommandRejected``), with the event's actor,
/// client address and user agent from its metadata and the changes as `{field: {old, new}}`.
///
/// Old values an event doesn't carry (a review's, a camera update's) come from what this read
/// model remembers (`audit_reviews`, `audit_cameras`). A page costs a few statements: the
/// remembered state of the page's events is read once, the entries are worked out in order
/// (``AuditEntry``), then written in one statement and the state in one per table.
public struct AuditProjection: Projection {
    public let name = "audit"
    public let filter = LogFilter(types: AuditEntry.types)
    /// Reviews of security events retention archived stay in the trail (an entry's id is its
    /// event's position, and the state it remembers is per stream, so applying the segments
    /// before the table gives the same rows as the log's order).
    public let replaysArchive = true

    public init() {}

    public func apply(_ events: [RecordedEvent], on connection: PostgresConnection, logger: Logger) async throws {
        // The events whose entry depends on what the trail remembers, decoded once.
        let payloads = try events.map { event -> Payload in
            switch event.type {
            case SecurityEventReviewed.type: .review(try SecurityEventReviewed.decode(event.data))
            case CameraUpdated.type: .cameraUpdate(try CameraUpdated.decode(event.data))
            case CameraRegistered.type: .cameraRegistered(try CameraRegistered.decode(event.data))
            default: .other
            }
        }
        var reviewIDs: Set<Int64> = []
        var cameraIDs: Set<String> = []
        for payload in payloads {
            if case .review(let review) = payload { reviewIDs.insert(review.id) }
            if case .cameraUpdate(let update) = payload { cameraIDs.insert(update.id) }
        }
        var reviews = try await Self.reviews(Array(reviewIDs), on: connection, logger: logger)
        var cameras = try await Self.cameras(Array(cameraIDs), on: connection, logger: logger)
        var changedReviews: Set<Int64> = []
        var changedCameras: Set<String> = []

        var rows = Rows()
        for (event, payload) in zip(events, payloads) {
            let entry: AuditEntry?
            switch payload {
            case .review(let review):
                let (made, state) = AuditEntry.review(review, old: reviews[review.id] ?? .init())
                reviews[review.id] = state
                changedReviews.insert(review.id)
                entry = made
            case .cameraUpdate(let update):
                let (made, state) = AuditEntry.cameraUpdate(update, old: cameras[update.id])
                if let state {
                    cameras[update.id] = state
                    changedCameras.insert(update.id)
                }
                entry = made
            case .cameraRegistered(let registered):
                let (made, state) = AuditEntry.cameraRegistered(registered)
                cameras[registered.id] = state
                changedCameras.insert(registered.id)
                entry = made
            case .other:
                entry = try AuditEntry.of(type: event.type, data: event.data)
            }
            if let entry { try rows.append(entry, of: event) }
        }

        if !rows.entries.isEmpty {
            try await connection.query(
                """
                INSERT INTO audit_log (id, logged_at, action, resource_type, resource_id, actor, ip_address,
                                       user_agent, details, status)
                SELECT id, logged_at, action, resource_type, resource_id, actor, ip_address, user_agent, details, status
                FROM jsonb_to_recordset(\(rows.json())::jsonb) AS r(
                    id bigint, logged_at timestamptz, action text, resource_type text, resource_id text, actor text,
                    ip_address text, user_agent text, details jsonb, status text)
                ON CONFLICT (id) DO NOTHING
                """,
                logger: logger)
        }
        if !changedReviews.isEmpty {
            let states: [JSONValue] = changedReviews.map { id in
                let state = reviews[id]!
                return .object([
                    "event_id": .number(Double(id)), "reviewed": .bool(state.reviewed),
                    "notes": state.notes.map(JSONValue.string) ?? .null,
                ])
            }
            let json = String(decoding: try EventCoding.encoder.encode(states), as: UTF8.self)
            try await connection.query(
                """
                INSERT INTO audit_reviews (event_id, reviewed, notes)
                SELECT event_id, reviewed, notes
                FROM jsonb_to_recordset(\(json)::jsonb) AS r(event_id bigint, reviewed boolean, notes text)
                ON CONFLICT (event_id) DO UPDATE SET reviewed = excluded.reviewed, notes = excluded.notes
                """,
                logger: logger)
        }
        if !changedCameras.isEmpty {
            let ids = Array(changedCameras)
            try await connection.query(
                """
                INSERT INTO audit_cameras (id, name, folder_path, status)
                SELECT * FROM unnest(\(ids)::text[], \(ids.map { cameras[$0]!.name })::text[],
                                     \(ids.map { cameras[$0]!.folderPath })::text[],
                                     \(ids.map { cameras[$0]!.status })::text[])
                ON CONFLICT (id) DO UPDATE SET
                    name = excluded.name, folder_path = excluded.folder_path, status = excluded.status
                """,
                logger: logger)
        }
    }

    /// An event whose entry needs (or updates) what the trail remembers.
    private enum Payload {
        case review(SecurityEventReviewed)
        case cameraUpdate(CameraUpdated)
        case cameraRegistered(CameraRegistered)
        case other
    }

    /// The entries of a page, as the JSON rows `jsonb_to_recordset` reads.
    private struct Rows {
        var entries: [JSONValue] = []

        mutating func append(_ entry: AuditEntry, of event: RecordedEvent) throws {
            let metadata = try EventCoding.decoder.decode(EventMetadata.self, from: Data(event.metadata.utf8))
            let text = { (value: String?) in value.map(JSONValue.string) ?? .null }
            entries.append(
                .object([
                    "id": .number(Double(event.position)),
                    "logged_at": .string(EventCoding.timestamp(event.recordedAt)),
                    "action": .string(entry.action), "resource_type": .string(entry.resourceType),
                    "resource_id": text(entry.resourceId), "actor": .string(metadata.actor),
                    "ip_address": text(metadata.clientAddress), "user_agent": text(metadata.userAgent),
                    "details": .object(entry.details), "status": .string(entry.status.rawValue),
                ]))
        }

        func json() throws -> String { String(decoding: try EventCoding.encoder.encode(entries), as: UTF8.self) }
    }

    private static func reviews(
        _ ids: [Int64], on connection: PostgresConnection, logger: Logger
    ) async throws -> [Int64: AuditMemory.Review] {
        guard !ids.isEmpty else { return [:] }
        let rows = try await connection.query(
            "SELECT event_id, reviewed, notes FROM audit_reviews WHERE event_id = ANY(\(ids))", logger: logger)
        var found: [Int64: AuditMemory.Review] = [:]
        for try await (id, reviewed, notes) in rows.decode((Int64, Bool, String?).self) {
            found[id] = .init(reviewed: reviewed, notes: notes)
        }
        return found
    }

    private static func cameras(
        _ ids: [String], on connection: PostgresConnection, logger: Logger
    ) async throws -> [String: AuditMemory.CameraFields] {
        guard !ids.isEmpty else { return [:] }
        let rows = try await connection.query(
            "SELECT id, name, folder_path, status FROM audit_cameras WHERE id = ANY(\(ids))", logger: logger)
        var found: [String: AuditMemory.CameraFields] = [:]
        for try await (id, name, folderPath, status) in rows.decode((String, String, String, String).self) {
            found[id] = .init(name: name, folderPath: folderPath, status: status)
        }
        return found
    }
}
