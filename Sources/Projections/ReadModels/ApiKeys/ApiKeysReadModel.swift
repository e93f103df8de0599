import Domain
import EventStore
import Foundation
import PostgresNIO

/// How the API reads the `api_keys` read model (written by ``ApiKeysProjection``): the keys
/// `/api/api-keys` lists, and the stored credential a presented key is checked against.
public struct ApiKeysReadModel: Sendable {
    let database: ReadDatabase

    public init(database: ReadDatabase) { self.database = database }

    static let list = ListSpec(table: "api_keys", timeColumn: "created_at", idIsInteger: false, visible: "true")

    /// A page of every issued key, revoked ones included, newest first.
    public func list(page: PageBounds) async throws -> ListPage {
        try await Self.list.page(item: Self.item, filters: SQLBuilder(), bounds: page, in: database)
    }

    /// The key (JSON), revoked or not; nil when no key has that name.
    public func item(_ name: String) async throws -> String? {
        try await database.json { sql in "SELECT \(Self.item) FROM api_keys t WHERE t.id = \(sql.bind(name))" }
    }

    /// What a presented key named `name` is checked against; nil when none was issued.
    public func credential(_ name: String) async throws -> ApiKey? {
        let rows = try await database.rows(
            "SELECT role, secret_hash, prefix, created_at, expires_at, revoked_at FROM api_keys WHERE id = \(name)")
        for try await (role, hash, prefix, created, expires, revoked) in rows.decode(
            (String, String, String, Date, Date?, Date?).self)
        {
            guard let role = Role(rawValue: role) else { return nil }
            return ApiKey(
                name: name, role: role, secretHash: hash, prefix: prefix, issuedAt: created, expiresAt: expires,
                revokedAt: revoked)
        }
        return nil
    }

    /// Adds counted usage to the keys' counters (`api_key_usage`, kept beside the read model:
    /// usage is not in the log, so a rebuild leaves it alone).
    public func addUsage(_ tallies: [String: KeyUsageTally]) async throws {
        let entries = tallies.sorted { $0.key < $1.key }
        let names = entries.map(\.key)
        let requests = entries.map(\.value.requests)
        let refused = entries.map(\.value.refused)
        let times = entries.map { EventCoding.timestamp($0.value.lastUsedAt, .microseconds) }
        let addresses = entries.map { $0.value.lastAddress ?? "" }
        for try await _ in try await database.rows(
            """
            INSERT INTO api_key_usage AS u (name, requests, refused, last_used_at, last_used_from)
            SELECT name, requests, refused, last_used_at::timestamptz, nullif(last_used_from, '')
            FROM unnest(\(names)::text[], \(requests)::int8[], \(refused)::int8[], \(times)::text[],
                        \(addresses)::text[]) AS e(name, requests, refused, last_used_at, last_used_from)
            ON CONFLICT (name) DO UPDATE SET
                requests = u.requests + excluded.requests, refused = u.refused + excluded.refused,
                last_used_at = greatest(u.last_used_at, excluded.last_used_at),
                last_used_from = CASE WHEN excluded.last_used_at >= u.last_used_at
                                      THEN excluded.last_used_from ELSE u.last_used_from END
            """)
        {}
    }

    /// The item JSON of the row `t` (never the hash), with its usage counters.
    static let item = """
        json_build_object(
            'id', t.id, 'name', t.id, 'role', t.role, 'prefix', t.prefix,
            'created_at', vigil_ts(t.created_at), 'expires_at', vigil_ts(t.expires_at),
            'revoked_at', vigil_ts(t.revoked_at),
            'is_active', t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now()),
            'usage', coalesce(
                (SELECT json_build_object(
                            'requests', u.requests, 'refused', u.refused,
                            'last_used_at', vigil_ts(u.last_used_at), 'last_used_from', u.last_used_from)
                 FROM api_key_usage u WHERE u.name = t.id),
                json_build_object('requests', 0, 'refused', 0, 'last_used_at', NULL, 'last_used_from', NULL)))::text
        """
}

/// What a key was used for since the counters were last saved (see `KeyUsage` in the API).
public struct KeyUsageTally: Sendable, Hashable {
    public var requests: Int64
    public var refused: Int64
    public var lastUsedAt: Date
    public var lastAddress: String?

    public init(requests: Int64, refused: Int64, lastUsedAt: Date, lastAddress: String? = nil) {
        self.requests = requests
        self.refused = refused
        self.lastUsedAt = lastUsedAt
        self.lastAddress = lastAddress
    }

    /// Both tallies together: the counts summed, the later use's time and address.
    public mutating func add(_ other: KeyUsageTally) {
        requests += other.requests
        refused += other.refused
        if other.lastUsedAt >= lastUsedAt { (lastUsedAt, lastAddress) = (other.lastUsedAt, other.lastAddress) }
    }
}
