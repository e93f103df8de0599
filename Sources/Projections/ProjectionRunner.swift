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
        /// How long a live runner may leave its checkpoint behind events it only moves past
        /// (pages with nothing its projection takes): such a move is written when the runner
        /// next applies events, when the log is quiet this long, or when its checkpoint was
        /// last written this long ago, whichever comes first. Under a flood of detections this
        /// spares most runners a commit per page; a waiter for the checkpoint
        /// (``EventStore/waitForProjections(_:toReach:timeout:progress:poll:)``) waits for
        /// events the projection doesn't take at most this much longer.
        public var progressInterval: Duration = .milliseconds(50)
        /// Retention's archive folder (`VIGIL_ARCHIVE_DIR`), for the rebuilds of read models
        /// that keep archived history (``Projection/replaysArchive``).
        public var archiveDirectory: String?

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
                // A reactor is never rebuilt: no rebuild role, no connection held for one.
                if !self.projection.isReactor {
                    group.addTask { await self.keepRunning("rebuild") { try await self.runRebuilds(on: $0) } }
                }
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
                try await store.client.withOpenConnection { connection in
                    try await self.marked(connection) { try await body(connection) }
                }
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
    ///
    /// `body` begins with the projection's generations (``Generations/read(_:lock:settings:on:logger:)``)
    /// and sets ``Generations/BatchSetting/noFlushWait`` there: a batch's commit needn't wait
    /// for the WAL flush. A crash loses at most its last moment, checkpoint included, which the
    /// runner then applies again. A reactor's batch that appends events does wait: others may
    /// already have read them (``EventStoreTransaction`` turns it back on when it appends). A
    /// reactor's batch that appends nothing (most: a page of detections the alert engine only
    /// moves past) thus holds the log's read horizon for its statements only, not for a flush.
    func batch<Value: Sendable>(
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
                try await body(isolating, connection)
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
        // Where the table has the checkpoint, and where the pages have come to (ahead of it
        // while a move past events the projection doesn't take is put off).
        var checkpoint = try await catchUp(
            generation, from: try await loadCheckpoint(generation: generation, on: connection), on: connection)
        var position = checkpoint
        let tick = projection.heartbeat ?? options.maintenanceInterval
        let heartbeat = Heartbeat(tick)
        let pages = source.pages(
            from: checkpoint, filter: projection.filter, batchSize: options.batchSize, heartbeat: heartbeat)
        let clock = ContinuousClock()
        var lastMaintenance = clock.now - options.maintenanceInterval
        var lastMove = clock.now
        let batchInterval = projection.batchInterval
        for try await page in pages {
            let received = clock.now
            if clock.now - lastMaintenance >= options.maintenanceInterval {
                try await retryParked(generation: generation, on: connection)
                lastMaintenance = clock.now
            }
            let quiet = page.events.isEmpty && page.next == position
            position = page.next
            // A quiet tick with nothing to apply or to move past (the maintenance above was
            // its purpose).
            if quiet && page.next == checkpoint && projection.heartbeat == nil { continue }
            // Only past events this projection doesn't take (most pages of most runners under
            // a flood of detections): the move waits for the next page that has work, for the
            // log to go quiet, or for `progressInterval` since the last move.
            if page.events.isEmpty && !quiet && clock.now - lastMove < options.progressInterval {
                heartbeat.interval = min(tick, options.progressInterval)
                continue
            }
            if page.events.isEmpty && projection.heartbeat == nil {
                // The move alone: one statement of its own, not a transaction of four round trips.
                try await moveCheckpoint(of: generation, from: checkpoint, past: page, standalone: true, on: connection)
            } else {
                // A run-based projection's statements read the page's events from the table,
                // where their payloads are parsed `jsonb` already: sent along as text, each
                // statement had PostgreSQL parse every payload again while planning (2.4% of
                // the machine under single POSTs; docs/BENCHMARKS.md, Ingest, session 43).
                try await applyLive(
                    page, generation: generation, after: checkpoint, onServer: projection is any RunBasedProjection,
                    on: connection)
            }
            checkpoint = page.next
            lastMove = clock.now
            heartbeat.interval = tick
            // Under a flood, the events that arrive meanwhile make the next page (a full page:
            // catching up, nothing to wait for).
            if batchInterval > .zero && !page.events.isEmpty && !page.isFull {
                try await clock.sleep(until: received + batchInterval)
            }
        }
    }

    /// `page` applied to the live `generation` in one batch, which holds the generation live
    /// (its schema comes first for the rest of the batch: nothing after its statements but the
    /// checkpoint's move).
    private func applyLive(
        _ page: LogPage, generation: Int32, after checkpoint: Checkpoint, onServer: Bool = false,
        on connection: PostgresConnection
    ) async throws {
        let (projection, logger) = (self.projection, store.logger)
        try await batch("live", at: checkpoint, on: connection) { isolating, connection in
            let (live, _) = try await Generations.read(
                projection.name, lock: .share,
                settings: [.noFlushWait, .searchPath(projection.schema(generation: generation))],
                on: connection, logger: logger)
            guard live == generation else { throw GenerationChanged() }
            try await self.apply(
                page, generation: generation, after: checkpoint, isolating: isolating, onServer: onServer,
                schemaIsSet: true, on: connection)
        }
    }

    /// Brings a live generation far behind the log (a new install or an import over an existing
    /// log, a runner back after a long stop) up to near its head as a rebuild does: bodiless
    /// pages of ``Options/rebuildBatchSize`` from the stretch of the log the process shares
    /// (``EventStore/readShared(as:after:filter:limit:on:)``), their events read on the server
    /// (``RunBasedProjection``s only; not a reactor). Stops at the first page that is not full,
    /// and returns where it got to: the live pages go on from there. A runner near the head
    /// reads one page here and applies nothing.
    private func catchUp(
        _ generation: Int32, from start: Checkpoint, on connection: PostgresConnection
    ) async throws -> Checkpoint {
        guard projection is any RunBasedProjection, !projection.isReactor else { return start }
        let reader = "\(projection.name)#\(generation)#live"
        return try await store.readingShared(as: reader) {
            var checkpoint = start
            while !Task.isCancelled {
                let page = try await store.readShared(
                    as: reader, after: checkpoint, filter: projection.filter, limit: options.rebuildBatchSize,
                    on: connection)
                guard page.isFull else { break }
                try await applyLive(page, generation: generation, after: checkpoint, onServer: true, on: connection)
                checkpoint = page.next
            }
            return checkpoint
        }
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
    /// database refused a value (SQLSTATE class 22, data exception; 23, integrity constraint;
    /// 54, a program limit such as an index key over 2,704 bytes), or an event could not be
    /// decoded. Connection losses, timeouts and Redis errors are not: those batches are retried
    /// until they pass.
    static func isDataError(_ error: any Error) -> Bool {
        if let transaction = error as? PostgresTransactionError, let thrown = transaction.closureError {
            return isDataError(thrown)
        }
        if let database = error as? PSQLError {
            guard let state = database.serverInfo?[.sqlState] else { return false }
            return state.hasPrefix("22") || state.hasPrefix("23") || state.hasPrefix("54")
        }
        return error is DecodingError
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
