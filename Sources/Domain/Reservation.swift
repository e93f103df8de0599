import Foundation

/// What must be unique across cameras, decided by the log rather than by a read model that lags.
public enum ReservationScope: String, Codable, Sendable, CaseIterable {
    /// A camera name, by its normalised id (`"Front Door"` and `"front-door"` are one name).
    case cameraName = "camera_name"
    /// A camera's folder, by its normalised path (``Camera/normalizedFolderPath(_:)``).
    case cameraFolderPath = "camera_folder_path"
}

/// A camera took a unique value. Stream `unique-<scope>-<value>`: appended with the stream's
/// version as the expected one, so of two concurrent claims only one is stored.
public struct UniqueValueReserved: DomainEvent {
    public static let type = "UniqueValueReserved"
    public var scope: ReservationScope
    public var value: String
    /// The camera id that holds the value.
    public var owner: String
    public var reservedAt: Date

    public init(scope: ReservationScope, value: String, owner: String, reservedAt: Date) {
        self.scope = scope
        self.value = value
        self.owner = owner
        self.reservedAt = reservedAt
    }

    public var stream: String { Reservation.stream(scope, value) }

    enum CodingKeys: String, CodingKey {
        case scope, value, owner
        case reservedAt = "reserved_at"
    }
}

/// A camera gave a unique value up (it was removed, renamed or moved to another folder).
public struct UniqueValueReleased: DomainEvent {
    public static let type = "UniqueValueReleased"
    public var scope: ReservationScope
    public var value: String
    public var owner: String
    public var releasedAt: Date

    public init(scope: ReservationScope, value: String, owner: String, releasedAt: Date) {
        self.scope = scope
        self.value = value
        self.owner = owner
        self.releasedAt = releasedAt
    }

    public var stream: String { Reservation.stream(scope, value) }

    enum CodingKeys: String, CodingKey {
        case scope, value, owner
        case releasedAt = "released_at"
    }
}

/// One unique value as its reservation stream tells it: who holds it, if anyone.
public struct Reservation: Sendable, Hashable {
    public var scope: ReservationScope
    public var value: String
    public var owner: String?

    public init(scope: ReservationScope, value: String, owner: String? = nil) {
        self.scope = scope
        self.value = value
        self.owner = owner
    }

    public static func stream(_ scope: ReservationScope, _ value: String) -> String {
        "unique-\(scope.rawValue)-\(value)"
    }

    public var stream: String { Self.stream(scope, value) }

    /// The reservation after the events of its stream, in order.
    public static func fold(
        scope: ReservationScope, value: String, _ events: [(type: String, data: String)]
    ) throws -> Reservation {
        var reservation = Reservation(scope: scope, value: value)
        for event in events {
            switch event.type {
            case UniqueValueReserved.type: reservation.owner = try UniqueValueReserved.decode(event.data).owner
            case UniqueValueReleased.type: reservation.owner = nil
            default: continue
            }
        }
        return reservation
    }

    /// Whether `camera` may take the value: it is free or already held by `camera`.
    public func isAvailable(to camera: String) -> Bool { owner == nil || owner == camera }

    /// The event that gives the value to `camera`, or nil when it already holds it.
    public func claim(for camera: String, at date: Date) -> UniqueValueReserved? {
        owner == camera ? nil : UniqueValueReserved(scope: scope, value: value, owner: camera, reservedAt: date)
    }

    /// The event that gives the value up, or nil when `camera` doesn't hold it (a camera
    /// registered before reservations existed holds none).
    public func release(by camera: String, at date: Date) -> UniqueValueReleased? {
        owner == camera ? UniqueValueReleased(scope: scope, value: value, owner: camera, releasedAt: date) : nil
    }
}

extension Camera {
    /// The folder path as it is stored and compared: runs of `/` collapse, `.` segments and a
    /// trailing `/` go (`/export//front/./` is `/export/front`). Case is kept: folder paths
    /// name files on a case-sensitive file system.
    public static func normalizedFolderPath(_ path: String) -> String {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        let joined = segments.joined(separator: "/")
        if path.hasPrefix("/") { return "/" + joined }
        return joined.isEmpty ? path : joined
    }

    /// The values this camera holds unique: its name (by id) and its folder path.
    public var reservations: [(scope: ReservationScope, value: String)] {
        [(.cameraName, Camera.normalizedID(name)), (.cameraFolderPath, Camera.normalizedFolderPath(folderPath))]
    }
}
