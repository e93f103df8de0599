import Domain
import Foundation
import PostgresNIO

/// How `/api/entities` reads the entities read model (``EntitiesProjection``); thumbnails and
/// camera names come from the detections and cameras read models.
public struct EntitiesReadModel: Sendable {
    let database: ReadDatabase

    public init(database: ReadDatabase) { self.database = database }

    static let list = ListSpec(table: "entities", timeColumn: "last_seen", idIsInteger: false, visible: "true")

    /// A page of the entities, most recently seen first: of `type`, ever seen by `camera`, seen
    /// at or after `since`.
    public func list(type: String?, camera: String?, since: Date?, page: PageBounds) async throws -> ListPage {
        var sql = SQLBuilder()
        if let type { sql.condition("t.entity_type = \(sql.bind(type))") }
        if let camera { sql.condition("\(sql.bind(camera)) = ANY(t.cameras_seen)") }
        if let since { sql.condition("t.last_seen >= \(sql.bind(since))") }
        return try await Self.list.page(item: Self.item, filters: sql, bounds: page, in: database)
    }

    /// The entity's summary (JSON); nil when there is none with that id.
    public func item(_ id: String) async throws -> String? {
        try await database.json { sql in "SELECT \(Self.item) FROM entities t WHERE t.id = \(sql.bind(id))" }
    }

    /// `{entity_id, entity_type, appearances: [{detection_id, camera_id, camera_name, timestamp,
    /// thumbnail_url, similarity_score, attributes}], count}`, oldest first: the first `limit`
    /// from `offset`; `count` is all of them. Nil when there is no such entity.
    public func history(_ id: String, limit: Int, offset: Int) async throws -> String? {
        try await database.json { sql in
            let entity = sql.bind(id)
            return """
                SELECT json_build_object(
                    'entity_id', t.id, 'entity_type', t.entity_type, 'count', t.appearance_count,
                    'appearances', coalesce((
                        SELECT json_agg(json_build_object(
                            'detection_id', s.detection_id, 'camera_id', s.camera_id, 'camera_name', c.name,
                            'timestamp', vigil_ts(s.seen_at), 'thumbnail_url', d.thumbnail_path,
                            'similarity_score', s.similarity, 'attributes', coalesce(s.attributes, '{}'::jsonb))
                            ORDER BY s.seen_at, s.position)
                        FROM (SELECT * FROM entity_sightings WHERE entity_id = \(entity)
                              ORDER BY seen_at, position LIMIT \(sql.bind(limit)) OFFSET \(sql.bind(offset))) s
                        LEFT JOIN cameras c ON c.id = s.camera_id
                        LEFT JOIN detections d ON d.id = s.detection_id), '[]'))::text
                FROM entities t WHERE t.id = \(entity)
                """
        }
    }

    /// The item JSON of the row `t` (CONTRACT: entities).
    static let item = """
        json_build_object(
            'id', t.id, 'entity_type', t.entity_type, 'first_seen', vigil_ts(t.first_seen),
            'last_seen', vigil_ts(t.last_seen), 'appearance_count', t.appearance_count,
            'cameras_seen', to_json(t.cameras_seen),
            'thumbnail_url', (SELECT d.thumbnail_path FROM detections d WHERE d.id = t.last_detection_id),
            'trust_status', t.trust_status)::text
        """
}
