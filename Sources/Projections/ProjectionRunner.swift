import EventStore
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Runs one projection: takes its lease, then applies the log page by page after its
/// checkpoint, following live appends.
///
/// **One runner per projection per cluster.** The lease is a session-level PostgreSQL advisory
/// lock held on the connection the runner writes through: when the process dies or the
/// connection drops, the lock goes with it and another instance's runner (polling for it)
/// takes over from the last committed checkpoint. Writes only ever happen on the
/// lock-holding connection, so a runner that lost its lease can't write.
public final class ProjectionRunner: Service, Sendable {
    public enum State: String, Sendable {
        /// Waiting for the lease (another instance runs this projection).
        case standby
        /// Holds the lease and applies the log.
        case live
        case stopped
    }

    public struct Options: Sendable {
        public var batchSize: Int = 1000
        /// How often a standby runner tries to take the lease.
        public var leaseRetry: Duration = .seconds(1)
        /// Wait after a failed batch before it is tried again.
        public var errorRetry: Duration = .seconds(1)

        public init(batchSize: Int = 1000, leaseRetry: Duration = .seconds(1), errorRetry: Duration = .seconds(1)) {
            self.batchSize = batchSize
            self.leaseRetry = leaseRetry
            self.errorRetry = errorRetry
        }
    }

    public let projection: any Projection
    private let store: EventStore
    private let notifier: LogNotifier
    private let options: Options
    private let currentState = Mutex(State.standby)

    public init(projection: any Projection, store: EventStore, notifier: LogNotifier, options: Options = Options()) {
        self.projection = projection
        self.store = store
        self.notifier = notifier
        self.options = options
    }

    public var state: State { currentState.withLock { $0 } }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await self.store.client.withConnection { connection in
                        try await self.runWhileLeased(on: connection)
                    }
                } catch {
                    if Task.isCancelled { break }
                    self.store.logger.warning(
                        "projection runner failed, restarting",
                        metadata: ["projection": "\(self.projection.name)", "error": "\(String(reflecting: error))"]
                    )
                    try? await self.recordError(error)
                }
                self.currentState.withLock { $0 = .standby }
                try? await Task.sleep(for: self.options.errorRetry)
            }
        }
        currentState.withLock { $0 = .stopped }
    }

    /// Takes the lease on `connection` (waiting while another instance has it), then applies
    /// pages until cancelled; releases the lease on the way out.
    private func runWhileLeased(on connection: PostgresConnection) async throws {
        let logger = store.logger
        let key = Self.leaseKey(projection.name)
        while !(try await tryLock(key, on: connection)) {
            try await Task.sleep(for: options.leaseRetry)
        }
        currentState.withLock { $0 = .live }
        logger.info("projection lease taken", metadata: ["projection": "\(projection.name)"])
        defer { currentState.withLock { $0 = .standby } }
        do {
            try await applyLog(on: connection)
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
        let logger = store.logger
        let released = await Task {
            (try? await connection.query("SELECT pg_advisory_unlock(\(key))", logger: logger)) != nil
        }.value
        if !released { try? await connection.close() }
    }

    private func applyLog(on connection: PostgresConnection) async throws {
        let logger = store.logger
        let name = projection.name
        var checkpoint = try await Self.loadCheckpoint(name, on: connection, logger: logger)
        let pages = store.pages(
            from: checkpoint,
            filter: projection.filter,
            notifier: notifier,
            batchSize: options.batchSize
        )
        for try await page in pages {
            let next = page.next
            let events = page.events
            let lastEventAt = events.last?.recordedAt
            try await connection.withTransaction(logger: logger) { connection in
                if !events.isEmpty {
                    try await self.projection.apply(events, on: connection, logger: logger)
                }
                let updated = try await connection.query(
                    """
                    UPDATE projection_checkpoints
                    SET checkpoint_tx = \(String(next.transactionID))::text::xid8,
                        checkpoint_position = \(next.position),
                        events_applied = events_applied + \(Int64(events.count)),
                        last_event_at = coalesce(\(lastEventAt)::timestamptz, last_event_at),
                        updated_at = now(), last_error = NULL, last_error_at = NULL
                    WHERE name = \(name)
                      AND (checkpoint_tx, checkpoint_position)
                          = (\(String(checkpoint.transactionID))::text::xid8, \(checkpoint.position))
                    RETURNING 1
                    """,
                    logger: logger
                ).decode(Int32.self).first { _ in true }
                // Someone else moved the checkpoint: this runner is not the only one. Refuse.
                guard updated != nil else { throw ProjectionError.checkpointMoved(name) }
            }
            checkpoint = next
        }
    }

    /// The saved checkpoint (creating the row at the start of the log).
    static func loadCheckpoint(
        _ name: String, on connection: PostgresConnection, logger: Logger
    ) async throws
        -> Checkpoint
    {
        try await connection.query(
            "INSERT INTO projection_checkpoints (name) VALUES (\(name)) ON CONFLICT (name) DO NOTHING",
            logger: logger
        )
        let rows = try await connection.query(
            "SELECT checkpoint_tx::text, checkpoint_position FROM projection_checkpoints WHERE name = \(name)",
            logger: logger
        )
        for try await (transaction, position) in rows.decode((String, Int64).self) {
            return Checkpoint(transactionID: UInt64(transaction) ?? 0, position: position)
        }
        return .start
    }

    private func tryLock(_ key: Int64, on connection: PostgresConnection) async throws -> Bool {
        let rows = try await connection.query("SELECT pg_try_advisory_lock(\(key))", logger: store.logger)
        for try await locked in rows.decode(Bool.self) { return locked }
        return false
    }

    private func recordError(_ error: any Error) async throws {
        try await store.client.query(
            """
            UPDATE projection_checkpoints SET last_error = \(String(describing: error)), last_error_at = now()
            WHERE name = \(projection.name)
            """,
            logger: store.logger
        )
    }

    /// The advisory-lock key of a projection's lease: a stable 64-bit hash of its name (FNV-1a).
    static func leaseKey(_ name: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "vigil.projection.\(name)".utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return Int64(bitPattern: hash)
    }
}

public enum ProjectionError: Error, CustomStringConvertible {
    case checkpointMoved(String)

    public var description: String {
        switch self {
        case .checkpointMoved(let name):
            "the checkpoint of projection \(name) was moved by someone else; its lease was not exclusive"
        }
    }
}
