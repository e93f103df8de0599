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

    /// The item JSON of the row `t` (never the hash).
    static let item = """
        json_build_object(
            'id', t.id, 'name', t.id, 'role', t.role, 'prefix', t.prefix,
            'created_at', vigil_ts(t.created_at), 'expires_at', vigil_ts(t.expires_at),
            'revoked_at', vigil_ts(t.revoked_at),
            'is_active', t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now()))::text
        """
}
