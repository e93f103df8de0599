import EventStore
import Foundation
import Logging
import PostgresNIO

/// Applying a page and moving the checkpoint past it: the live and rebuild roles' shared work.
extension ProjectionRunner {
    /// Applies a page to `generation` and moves its checkpoint, inside the caller's transaction.
    ///
    /// `isolating`: the page failed with a data error several times already; apply it in halves
    /// under savepoints down to the events that fail, and park those (see
    /// `schemas/store/0004_parked_events.sql`).
    ///
    /// `onServer`: the projection (a ``RunBasedProjection``) reads the page's events from the
    /// table, so the page may have been read without bodies (a rebuild, a catch-up); live
    /// batches do it too, the payloads being parsed `jsonb` there.
    ///
    /// `schemaIsSet`: the batch's first statement set the generation's schema first in the
    /// search path for the rest of the transaction already (a live batch).
    func apply(
        _ page: LogPage,
        generation: Int32,
        after checkpoint: Checkpoint,
        isolating: Bool,
        onServer: Bool = false,
        schemaIsSet: Bool = false,
        on connection: PostgresConnection
    ) async throws {
        let logger = store.logger
        var parked: [(event: RecordedEvent, reason: String)] = []
        func applyEvents() async throws {
            if isolating && !page.events.isEmpty {
                // Halving needs the events themselves.
                let events = onServer ? try await store.events(at: page.events.map(\.checkpoint)) : page.events
                parked = try await applyIsolating(events[...], on: connection)
            } else if onServer, let projection = projection as? any RunBasedProjection {
                let segments = EventRun.segments(
                    page.events, barriers: projection.barriers, readingLogAfter: checkpoint)
                try await projection.apply(segments, on: connection, logger: logger)
            } else {
                try await projection.apply(page.events, on: connection, logger: logger)
            }
        }
        if !page.events.isEmpty || projection.heartbeat != nil {
            if schemaIsSet {
                try await applyEvents()
            } else {
                try await Generations.inSchema(
                    projection.schema(generation: generation), on: connection, logger: logger, applyEvents)
            }
        }
        if !parked.isEmpty { try await park(parked, generation: generation, on: connection) }
        try await moveCheckpoint(
            of: generation, from: checkpoint, past: page, applied: Int64(page.events.count - parked.count),
            on: connection)
    }

    /// Moves the checkpoint of `generation` from `checkpoint` (compare and set: someone else
    /// moved it, and this runner is not the only one, is refused) past `page`, with `applied`
    /// events counted. Read-your-writes waiters (``LogNotifier/progress``) hear of it when it
    /// commits.
    ///
    /// `standalone`: the statement is its own transaction (a page with nothing to apply). It
    /// then holds the projection's row as a batch does (``Generations/read(_:lock:settings:on:logger:)``),
    /// throws ``GenerationChanged`` when `generation` is no longer live, and commits without
    /// the flush wait, as a batch does.
    func moveCheckpoint(
        of generation: Int32, from checkpoint: Checkpoint, past page: LogPage, applied: Int64 = 0,
        standalone: Bool = false, on connection: PostgresConnection
    ) async throws {
        let name = projection.name
        let next = page.next
        let noFlushWait = Generations.BatchSetting.noFlushWait
        // `vigil_move_checkpoint` (schemas/store/0012_move_checkpoint.sql) keeps its plans:
        // planning the statement it replaced cost more than running it.
        let rows = try await connection.preparedQuery(
            """
            SELECT m.moved, m.live,
                   CASE WHEN \(standalone) THEN set_config(\(noFlushWait.name), \(noFlushWait.value), true) END
            FROM public.vigil_move_checkpoint(
                \(name), \(generation),
                \(String(checkpoint.transactionID))::text::xid8, \(checkpoint.position)::int8,
                \(String(next.transactionID))::text::xid8, \(next.position)::int8,
                \(applied)::int8, \(page.events.last?.recordedAt)::timestamptz, \(standalone),
                \(LogNotifier.channel), \(LogNotifier.progressPrefix + name)) AS m
            """,
            logger: store.logger
        )
        var outcome: (moved: Bool, live: Bool)?
        for try await (moved, live, _) in rows.decode((Bool, Bool, String?).self) { outcome = (moved, live) }
        guard let outcome, outcome.live else { throw GenerationChanged() }
        guard outcome.moved else { throw ProjectionError.checkpointMoved(name) }
    }

    func loadCheckpoint(generation: Int32, on connection: PostgresConnection) async throws -> Checkpoint {
        let rows = try await connection.query(
            """
            SELECT checkpoint_tx::text, checkpoint_position FROM projection_checkpoints
            WHERE name = \(projection.name) AND generation = \(generation)
            """,
            logger: store.logger
        )
        for try await (transaction, position) in rows.decode((String, Int64).self) {
            return Checkpoint(transactionText: transaction, position: position)
        }
        throw ProjectionError.unknown("\(projection.name) generation \(generation)")
    }
}
