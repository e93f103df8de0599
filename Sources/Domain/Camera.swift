import Foundation

/// A camera's operational status (the seeds' enum).
public enum CameraStatus: String, Codable, Sendable, CaseIterable {
    case online, offline, error, unknown
}

/// A camera was added (`POST /api/cameras`). Stream `camera-<id>`.
public struct CameraRegistered: DomainEvent {
    public static let type = "CameraRegistered"
    public var id: String
    public var name: String
    public var folderPath: String
    public var status: CameraStatus
    public var registeredAt: Date

    public init(id: String, name: String, folderPath: String, status: CameraStatus, registeredAt: Date) {
        self.id = id
        self.name = name
        self.folderPath = folderPath
        self.status = status
        self.registeredAt = registeredAt
    }

    public var stream: String { Camera.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id, name, status
        case folderPath = "folder_path"
        case registeredAt = "registered_at"
    }
}

/// Some of a camera's fields changed (only the changed ones are present).
public struct CameraUpdated: DomainEvent {
    public static let type = "CameraUpdated"
    public var id: String
    public var name: String?
    public var folderPath: String?
    public var status: CameraStatus?
    public var updatedAt: Date

    public init(
        id: String, name: String? = nil, folderPath: String? = nil, status: CameraStatus? = nil, updatedAt: Date
    ) {
        self.id = id
        self.name = name
        self.folderPath = folderPath
        self.status = status
        self.updatedAt = updatedAt
    }

    public var stream: String { Camera.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id, name, status
        case folderPath = "folder_path"
        case updatedAt = "updated_at"
    }
}

/// A camera was deleted. Deletion is soft: the log keeps everything, and the read models hide
/// the camera with the detections and security events recorded before its removal.
public struct CameraRemoved: DomainEvent {
    public static let type = "CameraRemoved"
    public var id: String
    public var removedAt: Date

    public init(id: String, removedAt: Date) {
        self.id = id
        self.removedAt = removedAt
    }

    public var stream: String { Camera.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id
        case removedAt = "removed_at"
    }
}

/// A camera as its own stream tells it: what commands are decided against.
public struct Camera: Sendable, Hashable {
    public var id: String
    public var name: String
    public var folderPath: String
    public var status: CameraStatus
    public var registeredAt: Date
    public var updatedAt: Date?

    public init(
        id: String, name: String, folderPath: String, status: CameraStatus, registeredAt: Date, updatedAt: Date? = nil
    ) {
        self.id = id
        self.name = name
        self.folderPath = folderPath
        self.status = status
        self.registeredAt = registeredAt
        self.updatedAt = updatedAt
    }

    public static func stream(_ id: String) -> String { streamPrefix + id }
    /// The longest camera id, in characters (Unicode scalars): what every route that takes a
    /// `camera_id` accepts, and what a name may map to (``normalizedID(_:)``).
    public static let maxIDLength = 255
    /// What every camera stream's name starts with.
    public static let streamPrefix = "camera-"

    /// The id a camera name maps to: lower-case; spaces and hyphens become `_`; other
    /// non-word characters are dropped; runs of `_` collapse; leading and trailing `_` go.
    /// `"Front Door"` and `"front-door"` are both `front_door`. Composed (Unicode NFC): `"Café"`
    /// typed with `é` or with `e` and a combining accent is one name, where PostgreSQL, comparing
    /// bytes, would have kept two cameras that look the same.
    public static func normalizedID(_ name: String) -> String {
        var id = ""
        var lastWasUnderscore = false
        for character in name.lowercased() {
            let mapped: Character?
            if character == " " || character == "-" || character == "_" {
                mapped = "_"
            } else if character.isLetter || character.isNumber {
                mapped = character
            } else {
                mapped = nil
            }
            guard let mapped else { continue }
            if mapped == "_" {
                if lastWasUnderscore || id.isEmpty { continue }
                lastWasUnderscore = true
            } else {
                lastWasUnderscore = false
            }
            id.append(mapped)
        }
        while id.hasSuffix("_") { id.removeLast() }
        return id.precomposedStringWithCanonicalMapping
    }

    /// The camera after the events of its stream, in order (nil: never registered, or removed).
    public static func fold(_ events: [(type: String, data: String)]) throws -> Camera? {
        var camera: Camera?
        for event in events {
            switch event.type {
            case CameraRegistered.type:
                let registered = try CameraRegistered.decode(event.data)
                camera = Camera(
                    id: registered.id, name: registered.name, folderPath: registered.folderPath,
                    status: registered.status, registeredAt: registered.registeredAt)
            case CameraUpdated.type:
                camera = camera?.applying(try CameraUpdated.decode(event.data))
            case CameraRemoved.type:
                camera = nil
            default:
                continue
            }
        }
        return camera
    }

    /// The camera after `event`.
    public func applying(_ event: CameraUpdated) -> Camera {
        var camera = self
        camera.name = event.name ?? name
        camera.folderPath = event.folderPath ?? folderPath
        camera.status = event.status ?? status
        camera.updatedAt = event.updatedAt
        return camera
    }

    /// The event a change makes, or nil when it changes nothing.
    public func update(name: String?, folderPath: String?, status: CameraStatus?, at date: Date) -> CameraUpdated? {
        let event = CameraUpdated(
            id: id,
            name: name == self.name ? nil : name,
            folderPath: folderPath == self.folderPath ? nil : folderPath,
            status: status == self.status ? nil : status,
            updatedAt: date
        )
        return event.name == nil && event.folderPath == nil && event.status == nil ? nil : event
    }
}
