import Foundation

public enum ZoneType: String, Codable, Sendable, CaseIterable {
    case entryPoint = "entry_point", driveway, sidewalk, yard, other
}

public enum ZoneShape: String, Codable, Sendable, CaseIterable {
    case rectangle, polygon
}

/// What a zone of a camera's picture is: the fields a client sets (CONTRACT: Zones).
public struct ZoneDefinition: Codable, Sendable, Hashable {
    public var name: String
    public var zoneType: ZoneType
    /// `[x, y]` points, each coordinate normalised to 0…1.
    public var coordinates: [[Double]]
    public var shape: ZoneShape
    /// `#RRGGBB`.
    public var color: String
    public var enabled: Bool
    /// 0…100.
    public var priority: Int

    public static let defaultColor = "#3B82F6"
    public static let priorities = 0...100

    public init(
        name: String, zoneType: ZoneType = .other, coordinates: [[Double]], shape: ZoneShape = .rectangle,
        color: String = ZoneDefinition.defaultColor, enabled: Bool = true, priority: Int = 0
    ) {
        self.name = name
        self.zoneType = zoneType
        self.coordinates = coordinates
        self.shape = shape
        self.color = color
        self.enabled = enabled
        self.priority = priority
    }

    /// Why `coordinates` can't outline a `shape` (nil: they can): a polygon needs 3 points or
    /// more, a rectangle exactly 4, every point two numbers in 0…1, at most 100 points.
    public static func problem(coordinates: [[Double]], shape: ZoneShape) -> String? {
        if let bad = coordinates.firstIndex(where: { $0.count != 2 }) {
            return "point \(bad) must be [x, y]"
        }
        if let bad = coordinates.firstIndex(where: { $0.contains { !(0...1).contains($0) } }) {
            return "point \(bad): coordinates are normalised to 0..1"
        }
        switch shape {
        case .polygon where coordinates.count < 3: return "a polygon needs at least 3 points"
        case .rectangle where coordinates.count != 4: return "a rectangle needs exactly 4 points"
        default: break
        }
        if coordinates.count > 100 { return "at most 100 points" }
        return nil
    }

    /// `#RRGGBB`.
    public static func isColor(_ text: String) -> Bool {
        text.utf8.count == 7 && text.first == "#" && text.dropFirst().allSatisfy(\.isHexDigit)
    }

    /// The fields as JSON values, by name (the audit trail's old and new values).
    public var fields: [String: JSONValue] { EventCoding.fields(of: self) }

    enum CodingKeys: String, CodingKey {
        case name, coordinates, shape, color, enabled, priority
        case zoneType = "zone_type"
    }
}

/// A zone drawn on a camera (`POST /api/cameras/{camera_id}/zones`).
public struct ZoneCreated: DomainEvent {
    public static let type = "ZoneCreated"
    public var id: String
    public var cameraId: String
    public var zone: ZoneDefinition
    public var createdAt: Date

    public init(id: String, cameraId: String, zone: ZoneDefinition, createdAt: Date) {
        self.id = id
        self.cameraId = cameraId
        self.zone = zone
        self.createdAt = createdAt
    }

    public var stream: String { Zone.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id, zone
        case cameraId = "camera_id"
        case createdAt = "created_at"
    }
}

/// A zone changed (`PUT …/zones/{zone_id}`): what it is now and what it was.
public struct ZoneUpdated: DomainEvent {
    public static let type = "ZoneUpdated"
    public var id: String
    public var cameraId: String
    public var zone: ZoneDefinition
    public var previous: ZoneDefinition
    public var updatedAt: Date

    public init(id: String, cameraId: String, zone: ZoneDefinition, previous: ZoneDefinition, updatedAt: Date) {
        self.id = id
        self.cameraId = cameraId
        self.zone = zone
        self.previous = previous
        self.updatedAt = updatedAt
    }

    public var stream: String { Zone.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id, zone, previous
        case cameraId = "camera_id"
        case updatedAt = "updated_at"
    }
}

/// A zone removed (`DELETE …/zones/{zone_id}`).
public struct ZoneDeleted: DomainEvent {
    public static let type = "ZoneDeleted"
    public var id: String
    public var cameraId: String
    public var deletedAt: Date

    public init(id: String, cameraId: String, deletedAt: Date) {
        self.id = id
        self.cameraId = cameraId
        self.deletedAt = deletedAt
    }

    public var stream: String { Zone.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id
        case cameraId = "camera_id"
        case deletedAt = "deleted_at"
    }
}

/// A zone as its stream folds: nil before it was created and after it was deleted.
public struct Zone: Sendable, Hashable {
    public var id: String
    public var cameraId: String
    public var definition: ZoneDefinition
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String, cameraId: String, definition: ZoneDefinition, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.cameraId = cameraId
        self.definition = definition
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    public static func stream(_ id: String) -> String { "zone-\(id)" }

    /// The zone after the events of its stream (`type`, `data`), in order.
    public static func fold(_ events: [(type: String, data: String)]) throws -> Zone? {
        var zone: Zone?
        for (type, data) in events {
            switch type {
            case ZoneCreated.type:
                let event = try ZoneCreated.decode(data)
                zone = Zone(
                    id: event.id, cameraId: event.cameraId, definition: event.zone, createdAt: event.createdAt,
                    updatedAt: event.createdAt)
            case ZoneUpdated.type:
                let event = try ZoneUpdated.decode(data)
                zone?.definition = event.zone
                zone?.updatedAt = event.updatedAt
            case ZoneDeleted.type:
                zone = nil
            default:
                break
            }
        }
        return zone
    }
}
