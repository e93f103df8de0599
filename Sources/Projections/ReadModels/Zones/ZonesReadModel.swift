import Foundation
import PostgresNIO

/// How `/api/cameras/{camera_id}/zones` reads the `zones` read model (``ZonesProjection``).
public struct ZonesReadModel: Sendable {
    let database: ReadDatabase

    public init(database: ReadDatabase) { self.database = database }

    static let list = ListSpec(table: "zones", timeColumn: "created_at", idIsInteger: false, visible: "true")

    /// A page of the camera's zones, newest first.
    public func list(camera: String, page: PageBounds) async throws -> ListPage {
        var sql = SQLBuilder()
        sql.condition("t.camera_id = \(sql.bind(camera))")
        return try await Self.list.page(item: Self.item, filters: sql, bounds: page, in: database)
    }

    /// The camera's zone (JSON); nil when it has none with that id.
    public func item(camera: String, id: String) async throws -> String? {
        try await database.json { sql in
            "SELECT \(Self.item) FROM zones t WHERE t.id = \(sql.bind(id)) AND t.camera_id = \(sql.bind(camera))"
        }
    }

    /// The item JSON of the row `t` (CONTRACT: Zones).
    static let item = """
        json_build_object(
            'id', t.id, 'camera_id', t.camera_id, 'name', t.name, 'zone_type', t.zone_type,
            'coordinates', t.coordinates, 'shape', t.shape, 'color', t.color, 'enabled', t.enabled,
            'priority', t.priority, 'created_at', vigil_ts(t.created_at), 'updated_at', vigil_ts(t.updated_at))::text
        """
}
