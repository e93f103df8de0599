import EventStore
import Logging
import PostgresNIO

/// The rebuild role: fills a new generation from the start of the log while the live one
/// serves, and swaps it in when it has caught up (see ``EventStore/requestRebuild(of:)``).
extension ProjectionRunner {
    func runRebuilds(on connection: PostgresConnection) async throws {
        try await withLease("\(projection.name)#rebuild", on: connection) {
            try await Generations.ensureRegistered(projection, on: connection, logger: store.logger)
            while !Task.isCancelled {
                let logger = store.logger
                let rebuild = try await Generations.read(projection.name, lock: .none, on: connection, logger: logger)
                    .rebuild
                guard let rebuild else {
                    try await Task.sleep(for: options.leaseRetry)
                    continue
                }
                try await rebuildGeneration(rebuild, on: connection)
            }
        }
    }

    /// Applies the log from the start into `generation`, committing per batch, and swaps it in
    /// once it has caught up.
    ///
    /// A ``RunBasedProjection``'s events stay on the server: its pages are read without their
    /// bodies (checkpoints and types), and its statements read each stretch of the log from the
    /// table (``EventRun/segments(_:barriers:readingLogAfter:)``), in larger batches. Those
    /// pages come from the stretch of the log every rebuild in the process shares
    /// (``EventStore/readShared(as:after:filter:limit:on:)``): the log is read once for all of
    /// them, not once each. The read that decides the swap, under the projection's lock, reads
    /// the table.
    private func rebuildGeneration(_ generation: Int32, on connection: PostgresConnection) async throws {
        let reader = "\(projection.name)#\(generation)"
        try await store.readingShared(as: reader) { try await fill(generation, as: reader, on: connection) }
    }

    private func fill(_ generation: Int32, as reader: String, on connection: PostgresConnection) async throws {
        let logger = store.logger
        let onServer = projection is any RunBasedProjection
        let limit = onServer ? options.rebuildBatchSize : options.batchSize
        func read(after checkpoint: Checkpoint, shared: Bool = true) async throws -> LogPage {
            if onServer && shared {
                return try await store.readShared(
                    as: reader, after: checkpoint, filter: projection.filter, limit: limit, on: connection)
            }
            // Pooled: the swap's read comes inside the swap's transaction, and reads the table
            // as another session would, after its lock.
            return try await store.read(after: checkpoint, filter: projection.filter, limit: limit, bodies: !onServer)
        }
        try await replayArchive(into: generation, on: connection)
        var checkpoint = try await loadCheckpoint(generation: generation, on: connection)
        var vacuumed = false
        while !Task.isCancelled {
            let page = try await read(after: checkpoint)
            if !page.isFull && !vacuumed {
                // Nearly caught up: the indexes left out of the bulk load, fresh statistics and a
                // visibility map before it serves (so its first queries get good plans and
                // index-only scans), then catch up again.
                try await Generations.createDeferredIndexes(
                    projection, generation: generation, on: connection, logger: logger)
                try await Generations.vacuum(projection, generation: generation, on: connection, logger: logger)
                vacuumed = true
                continue
            }
            if page.isFull {
                let stillWanted = try await batch("rebuild", at: checkpoint, on: connection) {
                    isolating, connection in
                    let (_, rebuild) = try await Generations.read(
                        projection.name, lock: .share, settings: [.noFlushWait], on: connection, logger: logger)
                    guard rebuild == generation else { return false }
                    try await self.apply(
                        page, generation: generation, after: checkpoint, isolating: isolating, onServer: onServer,
                        on: connection)
                    return true
                }
                guard stillWanted else { return }
                checkpoint = page.next
                continue
            }
            // Caught up: apply what is left and swap, with the live runner held off.
            let swapped = try await batch("rebuild", at: checkpoint, on: connection) { isolating, connection in
                let (live, rebuild) = try await Generations.read(
                    projection.name, lock: .update, settings: [.noFlushWait], on: connection, logger: logger)
                guard rebuild == generation else { return true }
                let last = try await read(after: checkpoint, shared: false)
                try await self.apply(
                    last, generation: generation, after: checkpoint, isolating: isolating, onServer: onServer,
                    on: connection)
                checkpoint = last.next
                if last.isFull { return false }  // more arrived meanwhile: commit this batch, go on
                try await self.swap(to: generation, replacing: live, on: connection)
                return true
            }
            if swapped { return }
        }
    }

    private func swap(to generation: Int32, replacing live: Int32, on connection: PostgresConnection) async throws {
        let logger = store.logger
        let name = projection.name
        try await connection.query(
            """
            UPDATE projections SET live_generation = \(generation), rebuild_generation = NULL,
                                   rebuild_requested_at = NULL
            WHERE name = \(name)
            """,
            logger: logger
        )
        try await Generations.publish(projection, generation: generation, on: connection, logger: logger)
        try await connection.query(
            "DROP SCHEMA IF EXISTS \(unescaped: projection.schema(generation: live)) CASCADE",
            logger: logger
        )
        try await connection.query(
            "DELETE FROM projection_checkpoints WHERE name = \(name) AND generation = \(live)",
            logger: logger
        )
        logger.info(
            "projection rebuilt and swapped in", metadata: ["projection": "\(name)", "generation": "\(generation)"])
    }
}
