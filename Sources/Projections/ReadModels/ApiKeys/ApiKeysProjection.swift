import Domain
import EventStore
import Logging
import PostgresNIO

/// `api_keys`: every issued API key (revoked ones too), with the hash of its secret: what the
/// API checks a presented key against.
public struct ApiKeysProjection: RunBasedProjection {
    public let name = "api_keys"
    public let filter = LogFilter(types: [ApiKeyIssued.type, ApiKeyRevoked.type])

    public init() {}

    public func apply(_ segments: [EventRun.Segment], on connection: PostgresConnection, logger: Logger) async throws {
        // A name is issued once, so issuing (sorted first) and revoking commute across keys.
        try await applyRuns(segments, on: connection, logger: logger) { run in
            switch run.type {
            case ApiKeyIssued.type:
                return [
                    run.query { rows in
                        """
                        INSERT INTO api_keys (id, role, secret_hash, prefix, created_at, expires_at)
                        SELECT DISTINCT ON (data->>'name') data->>'name', data->>'role', data->>'secret_hash',
                               data->>'prefix', (data->>'issued_at')::timestamptz, (data->>'expires_at')::timestamptz
                        FROM \(rows) AS e(data, pos)
                        ORDER BY data->>'name', pos DESC
                        ON CONFLICT (id) DO NOTHING
                        """
                    }
                ]
            case ApiKeyRevoked.type:
                return [
                    run.query { rows in
                        """
                        UPDATE api_keys k SET revoked_at = coalesce(k.revoked_at, r.revoked_at)
                        FROM (
                            SELECT data->>'name' AS name, min((data->>'revoked_at')::timestamptz) AS revoked_at
                            FROM \(rows) AS e(data, pos) GROUP BY 1
                        ) r
                        WHERE k.id = r.name
                        """
                    }
                ]
            default:
                return []
            }
        }
    }
}
