import Foundation

/// What a re-identified entity is (CONTRACT: entities).
public enum EntityType: String, Codable, Sendable, CaseIterable {
    case person, vehicle, animal, package, other
}

/// Whether the household knows an entity.
public enum TrustStatus: String, Codable, Sendable, CaseIterable {
    case trusted, untrusted, unknown
}

/// A re-identification worker saw an entity again (or for the first time): `POST
/// /api/entities/sightings`. Stream `entity-<id>`; the first sighting fixes the entity's type.
public struct EntitySighted: DomainEvent {
    public static let type = "EntitySighted"
    public var entityId: String
    public var entityType: EntityType
    public var cameraId: String
    public var detectionId: Int64?
    /// How sure the worker is that it is the same entity (0…1; nil for a new one).
    public var similarity: Double?
    public var seenAt: Date
    public var attributes: [String: JSONValue]?

    public init(
        entityId: String, entityType: EntityType, cameraId: String, detectionId: Int64?, similarity: Double?,
        seenAt: Date, attributes: [String: JSONValue]?
    ) {
        self.entityId = entityId
        self.entityType = entityType
        self.cameraId = cameraId
        self.detectionId = detectionId
        self.similarity = similarity
        self.seenAt = seenAt
        self.attributes = attributes
    }

    public var stream: String { Entity.stream(entityId) }

    enum CodingKeys: String, CodingKey {
        case similarity, attributes
        case entityId = "entity_id"
        case entityType = "entity_type"
        case cameraId = "camera_id"
        case detectionId = "detection_id"
        case seenAt = "seen_at"
    }
}

/// Someone said whether an entity is known (`PATCH /api/entities/{id}`).
public struct EntityTrustChanged: DomainEvent {
    public static let type = "EntityTrustChanged"
    public var entityId: String
    public var trustStatus: TrustStatus
    public var previous: TrustStatus
    public var changedAt: Date

    public init(entityId: String, trustStatus: TrustStatus, previous: TrustStatus, changedAt: Date) {
        self.entityId = entityId
        self.trustStatus = trustStatus
        self.previous = previous
        self.changedAt = changedAt
    }

    public var stream: String { Entity.stream(entityId) }

    enum CodingKeys: String, CodingKey {
        case previous
        case entityId = "entity_id"
        case trustStatus = "trust_status"
        case changedAt = "changed_at"
    }
}

/// An entity as its stream folds (nil before its first sighting).
public struct Entity: Sendable, Hashable {
    public var id: String
    public var type: EntityType
    public var trust: TrustStatus

    public static func stream(_ id: String) -> String { "entity-\(id)" }

    public static func fold(_ events: [(type: String, data: String)]) throws -> Entity? {
        var entity: Entity?
        for (type, data) in events {
            switch type {
            case EntitySighted.type where entity == nil:
                let sighted = try EntitySighted.decode(data)
                entity = Entity(id: sighted.entityId, type: sighted.entityType, trust: .unknown)
            case EntityTrustChanged.type:
                entity?.trust = try EntityTrustChanged.decode(data).trustStatus
            default:
                break
            }
        }
        return entity
    }
}
