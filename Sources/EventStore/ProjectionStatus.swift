import Foundation
import Logging
import PostgresNIO

/// Where a projection stands, as `GET /api/projections` and `vigil projections status` show it.
public struct ProjectionStatus: Sendable {
    public struct Rebuild: Sendable {
        public var generation: Int32
        public var checkpoint: Checkpoint
        public var eventsApplied: Int64
        public var startedAt: Date
        /// 0…1, by log position.
        public var progress: Double
        /// Estimated seconds left at the rate so far (nil until there is a rate).
        public var estimatedSecondsLeft: Double?
        /// Events the rebuild parked so far (it goes on without them).
        public var parkedEvents: Int64
        /// Why its last batch failed, until one succeeds (a missing archive segment, …).
        public var lastError: String?
    }

    public var name: String
    public var generation: Int32
    public var checkpoint: Checkpoint
    public var head: Checkpoint
    /// Events between the checkpoint and the head (counted up to a million).
    public var lagEvents: Int64
    /// Seconds between the newest event in the log and the newest event the checkpoint passed
    /// (applied, or skipped as not the projection's kind; 0 when caught up).
    public var lagSeconds: Double
    public var eventsApplied: Int64
    public var updatedAt: Date
    public var lastError: String?
    public var lastErrorAt: Date?
    /// Some instance holds the projection's lease (runs it) right now.
    public var isLeased: Bool
    public var rebuild: Rebuild?
    /// Events of the live generation that could not be applied and wait, parked, for a retry.
    public var parkedEvents: Int64

    /// `failing` while its last batch failed (it is retried; `last_error` says why),
    /// `rebuilding` while a new generation is being built (the live one still serves), `live`
    /// when an instance runs it, else `stopped` (no instance runs it: nothing is applied).
    public var state: String {
        lastError != nil ? "failing" : rebuild != nil ? "rebuilding" : isLeased ? "live" : "stopped"
    }

    /// `ok`; `degraded` when events are parked (the read model lacks them) or no instance runs
    /// it; `failing` while it can't move on.
    public var health: String {
        if lastError != nil { return "failing" }
        return parkedEvents > 0 || (rebuild?.parkedEvents ?? 0) > 0 || !isLeased ? "degraded" : "ok"
    }
}

extension EventStore {
    /// The status of every registered projection; `leaseKey` names the advisory lock an
    /// instance holds while it runs a projection.
    public func projectionStatuses(leaseKey: (String) -> Int64) async throws -> [ProjectionStatus] {
        let names = try await client.guardedQuery("SELECT name FROM projections", logger: logger)
            .decode(String.self).reduce(into: [String]()) { $0.append($1) }
        let keys = names.map(leaseKey)
        return try await withReadHorizon { horizon in
            // One statement, one snapshot: the head and every checkpoint are read at the same
            // moment, so a projection behind the head never shows lag 0 (and the head is never
            // behind a checkpoint).
            let rows = try await client.guardedQuery(
                """
                WITH h AS MATERIALIZED (
                    SELECT e.tx_id, e.position, e.recorded_at FROM events e
                    WHERE e.tx_id < \(unescaped: horizon.sql)
                    ORDER BY e.tx_id DESC, e.position DESC LIMIT 1),
                head AS (SELECT coalesce((SELECT tx_id FROM h), '0'::xid8) AS tx_id,
                                coalesce((SELECT position FROM h), 0::int8) AS position,
                                (SELECT recorded_at FROM h) AS recorded_at,
                                \(unescaped: horizon.stalledSQL) AS stalled)
                SELECT p.name, p.live_generation, c.checkpoint_tx::text, c.checkpoint_position, c.events_applied,
                       c.updated_at, c.last_error, c.last_error_at,
                       (SELECT count(*) FROM (
                            SELECT 1 FROM events e
                            WHERE (e.tx_id, e.position) > (c.checkpoint_tx, c.checkpoint_position)
                              AND (e.tx_id, e.position) <= (head.tx_id, head.position)
                            LIMIT 1000000) AS behind),
                       EXISTS (SELECT 1 FROM pg_locks l
                               WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                                 AND l.classid::int8 = ((lease.key >> 32) & 4294967295)
                                 AND l.objid::int8 = (lease.key & 4294967295)),
                       -- The newest event the checkpoint passed: applied, or skipped as not
                       -- the projection's kind (a runner may put off moving past those).
                       coalesce(extract(epoch FROM head.recorded_at - coalesce(
                           (SELECT e.recorded_at FROM events e
                            WHERE e.position = c.checkpoint_position AND e.tx_id = c.checkpoint_tx),
                           c.last_event_at)), 0)::float8,
                       r.generation, r.checkpoint_tx::text, r.checkpoint_position, r.events_applied, r.created_at,
                       head.tx_id::text, head.position,
                       (SELECT count(*) FROM projection_parked_events x
                        WHERE x.name = p.name AND x.generation = c.generation AND x.resolved_at IS NULL),
                       (SELECT count(*) FROM projection_parked_events x
                        WHERE x.name = p.name AND x.generation = r.generation AND x.resolved_at IS NULL),
                       head.stalled, r.last_error
                FROM projections p
                CROSS JOIN head
                JOIN projection_checkpoints c ON c.name = p.name AND c.generation = p.live_generation
                LEFT JOIN projection_checkpoints r ON r.name = p.name AND r.generation = p.rebuild_generation
                JOIN unnest(\(names)::text[], \(keys)::int8[]) AS lease(name, key) ON lease.name = p.name
                ORDER BY p.name
                """,
                logger: logger
            )
            return try await Self.projectionStatuses(rows)
        }
    }

    private static func projectionStatuses(
        _ rows: CollectedRows
    ) async throws -> (value: [ProjectionStatus], stall: HorizonStall) {
        var statuses: [ProjectionStatus] = []
        var stall = HorizonStall.none
        for try await row in rows {
            let (name, generation, transaction, position, applied, updatedAt, error, errorAt, lag, leased, lagSeconds) =
                try row.decode((String, Int32, String, Int64, Int64, Date, String?, Date?, Int64, Bool, Double).self)
            let columns = try row.decode(
                (
                    String, Int32, String, Int64, Int64, Date, String?, Date?, Int64, Bool, Double,
                    Int32?, String?, Int64?, Int64?, Date?, String, Int64, Int64, Int64, String?, String?
                ).self
            )
            if let stalled = columns.20.flatMap({ UInt64($0) }) { stall = .at(stalled) }
            let head = Checkpoint(transactionText: columns.16, position: columns.17)
            var rebuild: ProjectionStatus.Rebuild?
            if let rebuildGeneration = columns.11, let rebuildTransaction = columns.12,
                let rebuildPosition = columns.13,
                let rebuildApplied = columns.14, let startedAt = columns.15
            {
                let progress = head.position > 0 ? min(1, Double(rebuildPosition) / Double(head.position)) : 1
                let elapsed = Date().timeIntervalSince(startedAt)
                rebuild = ProjectionStatus.Rebuild(
                    generation: rebuildGeneration,
                    checkpoint: Checkpoint(transactionText: rebuildTransaction, position: rebuildPosition),
                    eventsApplied: rebuildApplied,
                    startedAt: startedAt,
                    progress: progress,
                    estimatedSecondsLeft: progress > 0.001 ? elapsed * (1 - progress) / progress : nil,
                    parkedEvents: columns.19,
                    lastError: columns.21
                )
            }
            statuses.append(
                ProjectionStatus(
                    name: name,
                    generation: generation,
                    checkpoint: Checkpoint(transactionText: transaction, position: position),
                    head: head,
                    lagEvents: lag,
                    lagSeconds: lag == 0 ? 0 : max(0, lagSeconds),
                    eventsApplied: applied,
                    updatedAt: updatedAt,
                    lastError: error,
                    lastErrorAt: errorAt,
                    isLeased: leased,
                    rebuild: rebuild,
                    parkedEvents: columns.18
                )
            )
        }
        return (statuses, stall)
    }
}
