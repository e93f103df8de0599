import EventStore
import Foundation
import Logging
import PostgresNIO

/// Where a projection stands, as `GET /api/projections` and `vigil projections status` show it.
public struct ProjectionStatus: Sendable {
    public var name: String
    public var checkpoint: Checkpoint
    public var head: Checkpoint
    /// Events between the checkpoint and the head (counted up to a million).
    public var lagEvents: Int64
    /// Seconds between the newest event in the log and the newest event applied (0 when caught up).
    public var lagSeconds: Double
    public var eventsApplied: Int64
    public var updatedAt: Date
    public var lastError: String?
    public var lastErrorAt: Date?
    /// Some instance holds the projection's lease (runs it) right now.
    public var isLeased: Bool

    /// `live` when an instance runs it, else `stopped` (no instance of this cluster runs it).
    public var state: String { isLeased ? "live" : "stopped" }
}

extension EventStore {
    /// The status of every projection that has a checkpoint.
    public func projectionStatuses() async throws -> [ProjectionStatus] {
        let head = try await self.head()
        let names = try await client.query("SELECT name FROM projection_checkpoints", logger: logger)
            .decode(String.self).reduce(into: [String]()) { $0.append($1) }
        let keys = names.map { (name: $0, key: ProjectionRunner.leaseKey($0)) }
        let rows = try await client.query(
            """
            SELECT p.name, p.checkpoint_tx::text, p.checkpoint_position, p.events_applied, p.updated_at,
                   p.last_error, p.last_error_at,
                   (SELECT count(*) FROM (
                        SELECT 1 FROM events e
                        WHERE (e.tx_id, e.position) > (p.checkpoint_tx, p.checkpoint_position)
                          AND (e.tx_id, e.position) <= (\(String(head.transactionID))::text::xid8, \(head.position))
                        LIMIT 1000000) AS behind),
                   EXISTS (SELECT 1 FROM pg_locks l
                           WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                             AND l.classid::int8 = ((hash_key >> 32) & 4294967295)
                             AND l.objid::int8 = (hash_key & 4294967295)),
                   coalesce(extract(epoch FROM (
                        SELECT recorded_at FROM events
                        WHERE (tx_id, position) = (\(String(head.transactionID))::text::xid8, \(head.position))
                   ) - p.last_event_at), 0)::float8
            FROM projection_checkpoints p
            CROSS JOIN LATERAL (SELECT lease_keys.key AS hash_key
                                FROM unnest(\(keys.map(\.name))::text[], \(keys.map(\.key))::int8[]) AS lease_keys(name, key)
                                WHERE lease_keys.name = p.name) AS lease
            ORDER BY p.name
            """,
            logger: logger
        )
        var statuses: [ProjectionStatus] = []
        for try await (name, transaction, position, applied, updatedAt, error, errorAt, lag, leased, lagSeconds)
            in rows.decode((String, String, Int64, Int64, Date, String?, Date?, Int64, Bool, Double).self)
        {
            let checkpoint = Checkpoint(transactionID: UInt64(transaction) ?? 0, position: position)
            statuses.append(
                ProjectionStatus(
                    name: name,
                    checkpoint: checkpoint,
                    head: head,
                    lagEvents: lag,
                    lagSeconds: lag == 0 ? 0 : max(0, lagSeconds),
                    eventsApplied: applied,
                    updatedAt: updatedAt,
                    lastError: error,
                    lastErrorAt: errorAt,
                    isLeased: leased
                )
            )
        }
        return statuses
    }
}
