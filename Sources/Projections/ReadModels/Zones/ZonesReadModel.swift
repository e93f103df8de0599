import Domain
import EventStore
import Foundation
import PostgresNIO

/// How `/api/cameras/{camera_id}/zones` reads the `zones` read model (``ZonesProjection``).
public struct ZonesReadModel: Sendable {
    let database: ReadDatabase

    public init(database: ReadDatabase) { self.database = database }

    static let list = ListSpec(table: "zones", timeColumn: "created_at", idIsInteger: false, visible: "true")

    /// A page of the camera's zones, newest first; only enabled or disabled ones with `enabled`.
    public func list(camera: String, enabled: Bool? = nil, page: PageBounds) async throws -> ListPage {
        var sql = SQLBuilder()
        sql.condition("t.camera_id = \(sql.bind(camera))")
        if let enabled { sql.condition("t.enabled = \(sql.bind(enabled))") }
        return try await Self.list.page(item: Self.item, filters: sql, bounds: page, in: database)
    }

    /// The camera's zone (JSON); nil when it has none with that id.
    public func item(camera: String, id: String) async throws -> String? {
        try await database.json { sql in
            "SELECT \(Self.item) FROM zones t WHERE t.id = \(sql.bind(id)) AND t.camera_id = \(sql.bind(camera))"
        }
    }

    /// The zones with these ids, by id.
    public func zones(_ ids: [String]) async throws -> [String: Zone] {
        guard !ids.isEmpty else { return [:] }
        var sql = SQLBuilder()
        let statement = """
            SELECT z.id, z.camera_id, z.name, z.zone_type, z.coordinates::text, z.shape, z.color, z.enabled,
                   z.priority, z.created_at, z.updated_at
            FROM zones z WHERE z.id = ANY(\(sql.bind(ids))::text[])
            """
        var zones: [String: Zone] = [:]
        for try await row in try await database.rows(sql, statement) {
            let (id, camera, name, type, coordinates, shape, color, enabled, priority, created, updated) =
                try row.decode(
                    (String, String, String, String, String, String, String, Bool, Int32, Date, Date).self)
            let points = (try? JSONDecoder().decode([[Double]].self, from: Data(coordinates.utf8))) ?? []
            zones[id] = Zone(
                id: id, cameraId: camera,
                definition: ZoneDefinition(
                    name: name, zoneType: ZoneType(rawValue: type) ?? .other, coordinates: points,
                    shape: ZoneShape(rawValue: shape) ?? .polygon, color: color, enabled: enabled,
                    priority: Int(priority)),
                createdAt: created, updatedAt: updated)
        }
        return zones
    }

    /// The item JSON of the row `t` (CONTRACT: Zones).
    static let item = """
        json_build_object(
            'id', t.id, 'camera_id', t.camera_id, 'name', t.name, 'zone_type', t.zone_type,
            'coordinates', t.coordinates, 'shape', t.shape, 'color', t.color, 'enabled', t.enabled,
            'priority', t.priority, 'created_at', vigil_ts(t.created_at), 'updated_at', vigil_ts(t.updated_at))::text
        """
}
