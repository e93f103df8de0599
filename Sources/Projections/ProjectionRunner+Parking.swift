import EventStore
import Foundation
import Logging
import PostgresNIO

/// Poison events: what a runner does with events its projection can't apply, and how they are
/// applied again after a fix (`schemas/store/0004_parked_events.sql`).
extension ProjectionRunner {
    /// Applies `events` under a savepoint; when that fails with a data error, rolls back to it
    /// and applies each half the same way, down to single events, which are returned to be
    /// parked. Any other error is thrown (the batch is retried as a whole).
    func applyIsolating(
        _ events: ArraySlice<RecordedEvent>, on connection: PostgresConnection
    ) async throws -> [(event: RecordedEvent, reason: String)] {
        guard let first = events.first else { return [] }
        let logger = store.logger
        try await connection.query("SAVEPOINT vigil_isolate", logger: logger)
        do {
            try await projection.apply(Array(events), on: connection, logger: logger)
            try await connection.query("RELEASE SAVEPOINT vigil_isolate", logger: logger)
            return []
        } catch  where Self.isDataError(error) {
            try await connection.query("ROLLBACK TO SAVEPOINT vigil_isolate", logger: logger)
            try await connection.query("RELEASE SAVEPOINT vigil_isolate", logger: logger)
            if events.count == 1 { return [(first, Self.reason(error))] }
            let middle = events.startIndex + events.count / 2
            let left = try await applyIsolating(events[..<middle], on: connection)
            return left + (try await applyIsolating(events[middle...], on: connection))
        }
    }

    /// Records `parked` for `generation`, in the batch's transaction, and says so in the log.
    func park(
        _ parked: [(event: RecordedEvent, reason: String)], generation: Int32, on connection: PostgresConnection
    ) async throws {
        let logger = store.logger
        for (event, reason) in parked {
            logger.error(
                "projection parked an event it cannot apply",
                metadata: [
                    "projection": "\(projection.name)", "generation": "\(generation)",
                    "event_id": "\(event.id)", "type": "\(event.type)", "stream": "\(event.stream)",
                    "checkpoint": "\(event.checkpoint)", "error": "\(reason)",
                ])
        }
        try await connection.query(
            """
            INSERT INTO public.projection_parked_events
                (name, generation, tx_id, position, event_id, stream, type, error)
            SELECT \(projection.name), \(generation), p.tx::xid8, p.position, p.event_id, p.stream, p.type, p.error
            FROM unnest(\(parked.map { String($0.event.checkpoint.transactionID) })::text[],
                        \(parked.map(\.event.checkpoint.position))::int8[],
                        \(parked.map(\.event.id))::uuid[], \(parked.map(\.event.stream))::text[],
                        \(parked.map(\.event.type))::text[], \(parked.map(\.reason))::text[])
                 AS p(tx, position, event_id, stream, type, error)
            ON CONFLICT (name, generation, tx_id, position) DO UPDATE
            SET error = excluded.error, attempts = public.projection_parked_events.attempts + 1, resolved_at = NULL
            """,
            logger: logger)
    }

    /// Applies the parked events of `generation` that someone asked to retry, oldest first, each
    /// in a savepoint of one transaction: those that apply now are marked resolved (and counted
    /// as applied), the others keep their row with the new error.
    func retryParked(generation: Int32, on connection: PostgresConnection) async throws {
        let logger = store.logger
        let name = projection.name
        let rows = try await connection.query(
            """
            SELECT tx_id::text, position FROM projection_parked_events
            WHERE name = \(name) AND generation = \(generation) AND resolved_at IS NULL
              AND retry_requested_at IS NOT NULL
              AND (last_retry_at IS NULL OR last_retry_at < retry_requested_at)
            ORDER BY projection_parked_events.tx_id, position
            """,
            logger: logger)
        var wanted: [Checkpoint] = []
        for try await (transaction, position) in rows.decode((String, Int64).self) {
            wanted.append(Checkpoint(transactionText: transaction, position: position))
        }
        guard !wanted.isEmpty else { return }
        let events = try await store.events(at: wanted)
        try await connection.inTransaction(logger: logger) { connection in
            let (live, _) = try await Generations.read(name, lock: .share, on: connection, logger: logger)
            guard live == generation else { throw GenerationChanged() }
            var resolved = 0
            try await Generations.inSchema(projection.schema(generation: generation), on: connection, logger: logger) {
                for event in events {
                    let failed = try await applyIsolating([event][...], on: connection)
                    let error = failed.first?.reason
                    if error == nil { resolved += 1 }
                    try await connection.query(
                        """
                        UPDATE public.projection_parked_events
                        SET last_retry_at = now(), attempts = attempts + 1,
                            resolved_at = CASE WHEN \(error)::text IS NULL THEN now() END,
                            error = coalesce(\(error)::text, error)
                        WHERE name = \(name) AND generation = \(generation)
                          AND tx_id = \(String(event.checkpoint.transactionID))::text::xid8
                          AND position = \(event.checkpoint.position)
                        """,
                        logger: logger)
                }
            }
            try await connection.query(
                """
                UPDATE projection_checkpoints SET events_applied = events_applied + \(Int64(resolved))
                WHERE name = \(name) AND generation = \(generation)
                """,
                logger: logger)
            logger.notice(
                "projection retried parked events",
                metadata: [
                    "projection": "\(name)", "retried": "\(events.count)", "resolved": "\(resolved)",
                ])
        }
    }
}

extension EventStore {
    /// Asks `name`'s runner to apply its parked events again (after a fix); returns how many it
    /// will retry. The live runner picks them up within a couple of seconds.
    @discardableResult
    public func retryParkedEvents(of name: String) async throws -> Int {
        let rows = try await client.guardedQuery(
            """
            UPDATE projection_parked_events x SET retry_requested_at = now()
            FROM projections p
            WHERE p.name = \(name) AND x.name = p.name AND x.generation = p.live_generation
              AND x.resolved_at IS NULL
            RETURNING 1
            """,
            logger: logger)
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }

    /// A parked event, as `GET /api/projections/<name>/parked` lists it.
    public struct ParkedEvent: Sendable {
        public var checkpoint: Checkpoint
        public var eventID: UUID
        public var stream: String
        public var type: String
        public var error: String
        public var attempts: Int32
        public var parkedAt: Date
        public var lastRetryAt: Date?
        public var resolvedAt: Date?
    }

    /// The parked events of `name`'s live generation, oldest first (resolved ones too).
    public func parkedEvents(of name: String, limit: Int = 1000) async throws -> [ParkedEvent] {
        let rows = try await client.guardedQuery(
            """
            SELECT x.tx_id::text, x.position, x.event_id, x.stream, x.type, x.error, x.attempts, x.parked_at,
                   x.last_retry_at, x.resolved_at
            FROM projection_parked_events x JOIN projections p ON p.name = x.name AND p.live_generation = x.generation
            WHERE x.name = \(name)
            ORDER BY x.tx_id, x.position LIMIT \(limit)
            """,
            logger: logger)
        var parked: [ParkedEvent] = []
        for try await (transaction, position, id, stream, type, error, attempts, parkedAt, retriedAt, resolvedAt)
            in rows.decode((String, Int64, UUID, String, String, String, Int32, Date, Date?, Date?).self)
        {
            parked.append(
                ParkedEvent(
                    checkpoint: Checkpoint(transactionText: transaction, position: position), eventID: id,
                    stream: stream, type: type, error: error, attempts: attempts, parkedAt: parkedAt,
                    lastRetryAt: retriedAt, resolvedAt: resolvedAt))
        }
        return parked
    }
}
