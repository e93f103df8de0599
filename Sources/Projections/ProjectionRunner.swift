import EventStore
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Runs one projection: keeps its live generation up to date with the log, and carries out
/// rebuilds (``EventStore/requestRebuild(of:)``) into a new generation that is swapped in when
/// it has caught up.
///
/// **One runner per projection per cluster.** Each role (live, rebuild) holds a lease: a
/// session-level PostgreSQL advisory lock on the connection it writes through. When the
/// process dies or the connection drops, the lock goes with it and another instance's runner
/// (polling for it) takes over from the last committed checkpoint. Writes only happen on the
/// lock-holding connection, so a runner that lost its lease can't write.
public final class ProjectionRunner: Service, Sendable {
    public enum State: String, Sendable {
        /// Waiting for the lease (another instance runs this projection).
        case standby
        /// Holds the lease and applies the log.
        case live
        case stopped
    }

    /// What the runner does with an event its projection can't apply (a data error that
    /// doesn't go away when the batch is tried again).
    public enum PoisonPolicy: String, Sendable {
        /// Set it aside in `projection_parked_events`, report it, and go on with the log.
        case park
        /// Stop at it: keep retrying the batch, reported as failing, until the code is fixed.
        case stop
    }

    public struct Options: Sendable {
        public var batchSize: Int = 1000
        /// Events per batch of a rebuild whose events stay on the server (a
        /// ``RunBasedProjection``'s): its pages carry no data, so they can be larger.
        public var rebuildBatchSize: Int = 10_000
        /// How often a standby runner tries to take a lease, and an idle rebuilder looks for work.
        public var leaseRetry: Duration = .seconds(1)
        /// Wait after a failed batch before it is tried again (doubling up to `maxErrorRetry`
        /// while it keeps failing).
        public var errorRetry: Duration = .seconds(1)
        public var maxErrorRetry: Duration = .seconds(10)
        public var poisonPolicy: PoisonPolicy = .park
        /// Attempts of a batch that fails with a data error before its failing events are parked.
        public var attemptsBeforeParking: Int = 3
        /// How often a live runner on a quiet log looks for parked events to retry.
        public var maintenanceInterval: Duration = .seconds(2)

        public init(
            batchSize: Int = 1000, rebuildBatchSize: Int = 10_000, leaseRetry: Duration = .seconds(1),
            errorRetry: Duration = .seconds(1), poisonPolicy: PoisonPolicy = .park, attemptsBeforeParking: Int = 3
        ) {
            self.batchSize = batchSize
            self.rebuildBatchSize = rebuildBatchSize
            self.leaseRetry = leaseRetry
            self.errorRetry = errorRetry
            self.maxErrorRetry = max(errorRetry, .seconds(10))
            self.poisonPolicy = poisonPolicy
            self.attemptsBeforeParking = attemptsBeforeParking
        }
    }

    /// Consecutive failures of one role's batch at one checkpoint.
    struct Failures {
        var checkpoint: Checkpoint
        var count: Int
        var dataError: Bool
    }

    public let projection: any Projection
    let store: EventStore
    /// Where the live role's pages come from (the table, or the process's shared tail).
    private let source: any LogPageSource
    let options: Options
    private let currentState = Mutex(State.standby)
    /// Per role ("live", "rebuild"): what failed last, for the parking decision and backoff.
    private let failures = Mutex([String: Failures]())

    /// `source`: where the live role reads the log (default: the table, woken by `notifier`).
    public init(
        projection: any Projection, store: EventStore, notifier: LogNotifier, options: Options = Options(),
        source: (any LogPageSource)? = nil
    ) {
        self.projection = projection
        self.store = store
        self.source = source ?? TablePages(store: store, notifier: notifier)
        self.options = options
    }

    /// The live role's state in this process.
    public var state: State { currentState.withLock { $0 } }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.keepRunning("live") { try await self.runLive(on: $0) } }
                group.addTask { await self.keepRunning("rebuild") { try await self.runRebuilds(on: $0) } }
            }
        }
        currentState.withLock { $0 = .stopped }
    }

    /// Runs `role` on a pooled connection until cancelled, restarting it after errors.
    private func keepRunning(
        _ role: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> Void
    ) async {
        var delay = options.errorRetry
        let clock = ContinuousClock()
        while !Task.isCancelled {
            // A role that ran a while before it failed was healthy: its backoff starts over.
            let started = clock.now
            do {
                // The role lives on one connection (its lease); when that connection dies (a
                // PostgreSQL restart, a terminated session), the role ends and starts again
                // on a new one, instead of waiting forever on the dead one.
                try await store.client.withOpenConnection { connection in try await body(connection) }
            } catch {
                if Task.isCancelled { break }
                if clock.now - started >= options.maxErrorRetry { delay = options.errorRetry }
                let reason = Self.reason(error)
                store.logger.warning(
                    "projection runner failed, restarting",
                    metadata: [
                        "projection": "\(projection.name)", "role": "\(role)", "error": "\(reason)",
                        "retry_in": "\(delay)",
                    ]
                )
                // Best effort, and bounded: with the database gone this fails too (the log line
                // above says it), and a query on a connection closing right now never answers.
                _ = await withDeadline(.seconds(5)) { try await self.recordError(reason, rebuild: role == "rebuild") }
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, options.maxErrorRetry)
        }
    }

    /// Runs one batch's transaction for `role`, keeping count of its failures at `checkpoint`.
    private func batch<Value: Sendable>(
        _ role: String,
        at checkpoint: Checkpoint,
        on connection: PostgresConnection,
        _ body: (_ isolating: Bool, PostgresConnection) async throws -> Value
    ) async throws -> Value {
        let isolating = failures.withLock { failures in
            guard options.poisonPolicy == .park, let failed = failures[role], failed.checkpoint == checkpoint else {
                return false
            }
            return failed.dataError && failed.count >= options.attemptsBeforeParking
        }
        do {
            let value = try await connection.inTransaction(logger: store.logger) { connection in
                if !projection.isReactor {
                    // A read model is derived: its commit needn't wait for the WAL flush. A
                    // crash loses at most its last moment, checkpoint included, which it then
                    // applies again. A reactor's output is events others may already have
                    // read, so it waits.
                    try await connection.query("SET LOCAL synchronous_commit = off", logger: store.logger)
                }
                return try await body(isolating, connection)
            }
            failures.withLock { $0[role] = nil }
            return value
        } catch {
            let dataError = Self.isDataError(error)
            failures.withLock { failures in
                var failed = failures[role] ?? Failures(checkpoint: checkpoint, count: 0, dataError: dataError)
                if failed.checkpoint != checkpoint {
                    failed = Failures(checkpoint: checkpoint, count: 0, dataError: dataError)
                }
                failed.count += 1
                failed.dataError = dataError
                failures[role] = failed
            }
            throw error
        }
    }

    // MARK: - Live

    private func runLive(on connection: PostgresConnection) async throws {
        try await withLease(projection.name, on: connection) {
            try await Generations.ensureRegistered(projection, on: connection, logger: store.logger)
            currentState.withLock { $0 = .live }
            defer { currentState.withLock { $0 = .standby } }
            while true {
                do {
                    try await followLive(on: connection)
                    return  // cancelled
                } catch is GenerationChanged {
                    continue  // a rebuild was swapped in: go on from its checkpoint
                }
            }
        }
    }

    private func followLive(on connection: PostgresConnection) async throws {
        let logger = store.logger
        let generation = try await Generations.read(projection.name, lock: .none, on: connection, logger: logger).live
        var checkpoint = try await loadCheckpoint(generation: generation, on: connection)
        let pages = source.pages(
            from: checkpoint,
            filter: projection.filter,
            batchSize: options.batchSize,
            heartbeat: projection.heartbeat ?? options.maintenanceInterval
        )
        let clock = ContinuousClock()
        var lastMaintenance = clock.now - options.maintenanceInterval
        for try await page in pages {
            if clock.now - lastMaintenance >= options.maintenanceInterval {
                try await retryParked(generation: generation, on: connection)
                lastMaintenance = clock.now
            }
            // A quiet tick (for the maintenance above): nothing to apply or to move past.
            if page.events.isEmpty && page.next == checkpoint && projection.heartbeat == nil { continue }
            try await batch("live", at: checkpoint, on: connection) { isolating, connection in
                let (live, _) = try await Generations.read(
                    projection.name, lock: .share, on: connection, logger: logger)
                guard live == generation else { throw GenerationChanged() }
                try await self.apply(
                    page, generation: generation, after: checkpoint, isolating: isolating, on: connection)
            }
            checkpoint = page.next
        }
    }

    // MARK: - Rebuild

    private func runRebuilds(on connection: PostgresConnection) async throws {
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
    /// table (``EventRun/segments(_:barriers:readingLogAfter:)``), in larger batches.
    private func rebuildGeneration(_ generation: Int32, on connection: PostgresConnection) async throws {
        let logger = store.logger
        let onServer = projection is any RunBasedProjection
        let limit = onServer ? options.rebuildBatchSize : options.batchSize
        func read(after checkpoint: Checkpoint) async throws -> LogPage {
            try await store.read(after: checkpoint, filter: projection.filter, limit: limit, bodies: !onServer)
        }
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
                        projection.name, lock: .share, on: connection, logger: logger)
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
                    projection.name, lock: .update, on: connection, logger: logger)
                guard rebuild == generation else { return true }
                let last = try await read(after: checkpoint)
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

    // MARK: - Shared

    /// Applies a page to `generation` and moves its checkpoint, inside the caller's transaction.
    ///
    /// `isolating`: the page failed with a data error several times already; apply it in halves
    /// under savepoints down to the events that fail, and park those (see
    /// `schemas/store/0004_parked_events.sql`).
    ///
    /// `onServer`: the page was read without bodies, and the projection (a
    /// ``RunBasedProjection``) reads its events from the table.
    private func apply(
        _ page: LogPage,
        generation: Int32,
        after checkpoint: Checkpoint,
        isolating: Bool,
        onServer: Bool = false,
        on connection: PostgresConnection
    ) async throws {
        let logger = store.logger
        let name = projection.name
        var parked: [(event: RecordedEvent, reason: String)] = []
        if !page.events.isEmpty || projection.heartbeat != nil {
            try await Generations.inSchema(projection.schema(generation: generation), on: connection, logger: logger) {
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
        }
        if !parked.isEmpty { try await park(parked, generation: generation, on: connection) }
        let applied = Int64(page.events.count - parked.count)
        let next = page.next
        let updated = try await connection.query(
            """
            UPDATE projection_checkpoints
            SET checkpoint_tx = \(String(next.transactionID))::text::xid8,
                checkpoint_position = \(next.position),
                events_applied = events_applied + \(applied),
                last_event_at = coalesce(\(page.events.last?.recordedAt)::timestamptz, last_event_at),
                updated_at = now(), last_error = NULL, last_error_at = NULL
            WHERE name = \(name) AND generation = \(generation)
              AND (checkpoint_tx, checkpoint_position)
                  = (\(String(checkpoint.transactionID))::text::xid8, \(checkpoint.position))
            RETURNING 1
            """,
            logger: logger
        ).decode(Int32.self).first { _ in true }
        // Someone else moved the checkpoint: this runner is not the only one. Refuse.
        guard updated != nil else { throw ProjectionError.checkpointMoved(name) }
    }

    /// Runs `body` holding the advisory lock `leaseName` on `connection` (waiting for it).
    private func withLease(
        _ leaseName: String,
        on connection: PostgresConnection,
        _ body: () async throws -> Void
    ) async throws {
        let key = Self.leaseKey(leaseName)
        while !(try await tryLock(key, on: connection)) {
            try await Task.sleep(for: options.leaseRetry)
        }
        store.logger.debug("lease taken", metadata: ["lease": "\(leaseName)"])
        do {
            try await body()
            await release(key, on: connection)
        } catch {
            await release(key, on: connection)
            throw error
        }
    }

    /// Gives the lease back before the connection returns to the pool (a session-level lock
    /// would otherwise stay with the pooled connection). Runs even when this task is cancelled
    /// (in a task of its own, awaited); if the unlock fails, the connection is closed, which
    /// releases the lock too.
    private func release(_ key: Int64, on connection: PostgresConnection) async {
        // The session is gone, and its locks with it (a query now would never answer).
        guard !connection.isClosed else { return }
        let logger = store.logger
        let released = await Task {
            (try? await connection.query("SELECT pg_advisory_unlock(\(key))", logger: logger)) != nil
        }.value
        if !released { try? await connection.close() }
    }

    private func tryLock(_ key: Int64, on connection: PostgresConnection) async throws -> Bool {
        let rows = try await connection.query("SELECT pg_try_advisory_lock(\(key))", logger: store.logger)
        for try await locked in rows.decode(Bool.self) { return locked }
        return false
    }

    private func loadCheckpoint(generation: Int32, on connection: PostgresConnection) async throws -> Checkpoint {
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

    private func recordError(_ reason: String, rebuild: Bool) async throws {
        let column = rebuild ? "rebuild_generation" : "live_generation"
        try await store.client.guardedQuery(
            """
            UPDATE projection_checkpoints c SET last_error = \(reason), last_error_at = now()
            FROM projections p
            WHERE p.name = \(projection.name) AND c.name = p.name AND c.generation = p.\(unescaped: column)
            """,
            logger: store.logger
        )
    }

    static func reason(_ error: any Error) -> String {
        if let transaction = error as? PostgresTransactionError, let thrown = transaction.closureError {
            return reason(thrown)
        }
        if let database = error as? PSQLError, let message = database.serverInfo?[.message] {
            return message
        }
        return String(describing: error)
    }

    /// An error that the same events will raise again however often they are applied: the
    /// database refused a value (SQLSTATE class 22, data exception, or 23, integrity
    /// constraint), or an event could not be decoded. Connection losses, timeouts and Redis
    /// errors are not: those batches are retried until they pass.
    static func isDataError(_ error: any Error) -> Bool {
        if let transaction = error as? PostgresTransactionError, let thrown = transaction.closureError {
            return isDataError(thrown)
        }
        if let database = error as? PSQLError {
            guard let state = database.serverInfo?[.sqlState] else { return false }
            return state.hasPrefix("22") || state.hasPrefix("23")
        }
        return error is DecodingError
    }

    /// The advisory-lock key of a lease: a stable 64-bit hash of its name.
    static func leaseKey(_ name: String) -> Int64 {
        Int64(bitPattern: fnv1a("vigil.projection.\(name)"))
    }
}

/// The live generation changed under a batch (a rebuild was swapped in).
struct GenerationChanged: Error {}

public enum ProjectionError: Error, CustomStringConvertible {
    case checkpointMoved(String)
    case invalidName(String)
    case unknown(String)
    case reactorNotRebuildable(String)

    public var description: String {
        switch self {
        case .checkpointMoved(let name):
            "the checkpoint of projection \(name) was moved by someone else; its lease was not exclusive"
        case .invalidName(let name):
            "projection name '\(name)' must match [a-z][a-z0-9_]{0,39}"
        case .unknown(let name):
            "no projection \(name)"
        case .reactorNotRebuildable(let name):
            "\(name) is a reactor: what it decided is in the log, so it is never rebuilt"
        }
    }
}
