import Domain
import EventStore
import Foundation
import PostgresNIO

/// How `/api/cameras` (and ingest's camera check) reads the `cameras` read model (written by
/// ``CamerasProjection``).
public struct CamerasReadModel: Sendable {
    let database: ReadDatabase

    public init(database: ReadDatabase) { self.database = database }

    static let list = ListSpec(
        table: "cameras", timeColumn: "created_at", idIsInteger: false, visible: "t.removed_at IS NULL")

    /// A page of the list (optionally of one status), newest first.
    public func list(status: CameraStatus?, page: PageBounds) async throws -> ListPage {
        var sql = SQLBuilder()
        if let status { sql.condition("t.status = \(sql.bind(status.rawValue))") }
        return try await Self.list.page(item: Self.item, filters: sql, bounds: page, in: database)
    }

    /// The camera (JSON) unless it doesn't exist or was removed.
    public func item(_ id: String) async throws -> String? {
        try await database.json { sql in
            "SELECT \(Self.item) FROM cameras t WHERE t.id = \(sql.bind(id)) AND t.removed_at IS NULL"
        }
    }

    /// The item JSON of a camera folded from its stream (a read back in time), rendered by the
    /// same SQL as the table's rows.
    public func item(of camera: Camera, lastSeen: Date?) async throws -> String? {
        let row = Row(
            id: camera.id, name: camera.name, folderPath: camera.folderPath, status: camera.status.rawValue,
            createdAt: camera.registeredAt, updatedAt: camera.updatedAt, lastSeenAt: lastSeen)
        let json = String(decoding: try EventCoding.encoder.encode(row), as: UTF8.self)
        return try await database.json { sql in
            "SELECT \(Self.item) FROM jsonb_populate_record(NULL::cameras, \(sql.bind(json))::jsonb) t"
        }
    }

    /// A row of `cameras`, as JSON.
    private struct Row: Encodable {
        var id, name, folderPath, status: String
        var createdAt: Date
        var updatedAt, lastSeenAt: Date?

        enum CodingKeys: String, CodingKey {
            case id, name, status
            case folderPath = "folder_path"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
            case lastSeenAt = "last_seen_at"
        }
    }

    /// How many cameras the read model shows (registered, not removed), and how many of them
    /// are `online` (`/ws/system`'s `cameras {active, total}`).
    public func counts() async throws -> (active: Int, total: Int) {
        let rows = try await database.rows(
            "SELECT count(*) FILTER (WHERE status = 'online'), count(*) FROM cameras WHERE removed_at IS NULL")
        var counts = (active: 0, total: 0)
        for try await row in rows.decode((Int, Int).self) { counts = row }
        return counts
    }

    /// Which of `ids` the read model shows as registered and not removed.
    public func registered(_ ids: Set<String>) async throws -> Set<String> {
        let rows = try await database.rows(
            "SELECT id FROM cameras WHERE id = ANY(\(Array(ids))) AND removed_at IS NULL")
        var known: Set<String> = []
        for try await id in rows.decode(String.self) { known.insert(id) }
        return known
    }

    /// The camera's `last_seen_at` (nil if the read model has none, or doesn't show the camera
    /// yet) and `registeredAt` as the read model renders times (`vigil_ts`), in one statement.
    /// `registeredAt` is the event's own text of the time (milliseconds), as the read model
    /// stores it.
    public func times(_ id: String, registeredAt: String) async throws -> (lastSeen: String?, created: String?) {
        let rows = try await database.rows(
            """
            SELECT vigil_ts(last_seen_at), vigil_ts(\(registeredAt)::timestamptz)
            FROM (SELECT 1) AS one LEFT JOIN cameras ON id = \(id) AND removed_at IS NULL
            """)
        var times: (lastSeen: String?, created: String?) = (nil, nil)
        for try await row in rows.decode((String?, String?).self) { times = row }
        return times
    }

    /// Which of a camera's unique values another visible camera already has.
    public struct Taken: Sendable {
        public var name: Bool
        public var folderPath: Bool
    }

    /// Whether another visible camera (not `id`) already has `name` or `folderPath`.
    public func taken(name: String?, folderPath: String?, except id: String) async throws -> Taken {
        let rows = try await database.rows(
            """
            SELECT name = \(name), folder_path = \(folderPath) FROM cameras
            WHERE removed_at IS NULL AND id <> \(id) AND (name = \(name) OR folder_path = \(folderPath))
            LIMIT 1
            """)
        for try await (sameName, sameFolder) in rows.decode((Bool?, Bool?).self) {
            return Taken(name: sameName == true, folderPath: sameFolder == true)
        }
        return Taken(name: false, folderPath: false)
    }

    // MARK: SQL

    /// The item JSON (CONTRACT: cameras) of the row `t`.
    static let item = """
        json_build_object(
            'id', t.id, 'name', t.name, 'folder_path', t.folder_path, 'status', t.status,
            'created_at', vigil_ts(t.created_at), 'last_seen_at', vigil_ts(t.last_seen_at))::text
        """
}
