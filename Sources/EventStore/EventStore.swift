import Foundation
import Logging
import PostgresNIO
import Synchronization

/// The append-only event log in PostgreSQL.
///
/// `EventStore` is a cheap value over a running `PostgresClient`: appends in their own
/// transaction (``append(to:events:expected:)``), in a caller's transaction
/// (``transaction(_:)``), in bulk through COPY (``appendBulk(_:allOrNothing:)``); reads of the global
/// log (``read(after:filter:limit:)``) and of one stream (``readStream(_:fromVersion:limit:)``).
/// For many concurrent writers use ``GroupCommitAppender``; to follow the log live use ``tail(from:filter:notifier:)``.
public struct EventStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger
    /// Running transactions seen to be this database's (for the read horizon).
    let places = TransactionPlaces()
    /// How ``appendBatch(_:)`` wrote: in one statement, or deferred to the full transaction.
    public let appendPaths = AppendPaths()
    /// The stretch of the log the rebuilds in this process share (``readShared(as:after:filter:limit:on:)``).
    let window = LogWindow()
    /// How long a write (``transaction(_:)``) waits for a pooled connection before it gives up
    /// with ``ConnectionLeaseTimeout``, having written nothing: while PostgreSQL refuses new
    /// connections and the pool has none free, a write fails fast and honestly rather than
    /// committing long after its caller was told it failed.
    public var writeLeaseTimeout: Duration = .seconds(2)

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Appends `events` to `stream` atomically, in a transaction of its own.
    ///
    /// - Throws: ``AppendError`` when the stream is not at the expected version or an event id
    ///   is stored elsewhere. Appending events that are already stored (same ids, same stream)
    ///   returns the original result and writes nothing.
    @discardableResult
    public func append(
        to stream: String, events: [NewEvent], expected: ExpectedVersion = .any
    ) async throws
        -> AppendResult
    {
        try await transaction { try await $0.append(to: stream, events: events, expected: expected) }
    }

    /// Appends several requests in one transaction; each is accepted or refused on its own
    /// (a refused request writes nothing, the others are written).
    ///
    /// Requests that expect nothing of their streams' versions (the group commit's detections)
    /// are written in one statement, one round trip (``LogWriter/writeInOneStatement(_:on:logger:)``),
    /// which defers to the full transaction whenever that could decide otherwise.
    public func appendBatch(_ requests: [AppendRequest]) async throws -> [Result<AppendResult, AppendError>] {
        if LogWriter.fitsOneStatement(requests) {
            do {
                let results = try await client.withOpenConnection(leaseTimeout: writeLeaseTimeout) {
                    [logger] connection in
                    try await LogWriter.writeInOneStatement(requests, on: connection, logger: logger)
                }
                appendPaths.wroteInOneStatement()
                return results
            } catch  where LogWriter.deferring(error) {
                appendPaths.deferredToTransaction()
            }
        }
        return try await transaction { transaction in
            try await LogWriter.write(requests, method: .insert, on: transaction.connection, logger: logger)
        }
    }

    /// Appends events through `COPY`, the fastest path, for bulk ingest and imports.
    ///
    /// Each event goes to the end of its stream (no version check). Events whose id is
    /// already stored in the same stream are skipped; an id stored in another stream refuses
    /// that event only. All accepted events commit in one transaction; with `allOrNothing`, a
    /// refused event rolls that transaction back, and nothing is written (`appended` and
    /// `alreadyStored` are then 0, `refused` says why).
    public func appendBulk(
        _ items: [(stream: String, event: NewEvent)], allOrNothing: Bool = false
    ) async throws -> BulkAppendResult {
        let requests = items.map { AppendRequest(stream: $0.stream, events: [$0.event], expected: .any) }
        let results: [Result<AppendResult, AppendError>]
        do {
            results = try await transaction { transaction in
                let results = try await LogWriter.write(
                    requests, method: .copy, on: transaction.connection, logger: logger)
                if allOrNothing, results.contains(where: { (try? $0.get()) == nil }) {
                    throw BulkRefusal(results: results)
                }
                return results
            }
        } catch let refusal as BulkRefusal {
            var summary = BulkAppendResult()
            for case (let index, .failure(let error)) in refusal.results.enumerated() {
                summary.refused.append((index, error))
            }
            return summary
        }
        var summary = BulkAppendResult()
        for (index, result) in results.enumerated() {
            switch result {
            case .success(let appended) where appended.wasAlreadyStored: summary.alreadyStored += 1
            case .success: summary.appended += 1
            case .failure(let error): summary.refused.append((index, error))
            }
        }
        return summary
    }

    /// Runs `body` in one transaction, with appends and any other writes of the caller
    /// (a projector's checkpoint, an idempotency record) committing together.
    ///
    /// Keep it short: while it runs, no reader can read past the moment it started. Append to
    /// several streams in a consistent order (by name): two transactions taking the same
    /// streams in opposite orders deadlock, and PostgreSQL aborts one of them. The body
    /// may run more than once: when this transaction turns out to be older than the last
    /// writer of a stream it appends to, it is rolled back and run again in a new one (so
    /// every stream's versions stay in log order), like a serialization-failure retry.
    ///
    /// A connection that closes under the transaction (PostgreSQL stopped) ends it with
    /// ``PostgresConnectionClosed`` at once, whatever query the body was waiting on; no pooled
    /// connection within ``writeLeaseTimeout`` ends it with ``ConnectionLeaseTimeout`` before it
    /// begins.
    public func transaction<Value: Sendable>(
        _ body: @escaping @Sendable (EventStoreTransaction) async throws -> Value
    ) async throws -> Value {
        var attempt = 0
        while true {
            do {
                return try await client.withOpenConnection(leaseTimeout: writeLeaseTimeout) { [logger] connection in
                    try await connection.inTransaction(logger: logger) { connection in
                        try await body(EventStoreTransaction(connection: connection, logger: logger))
                    }
                }
            } catch let stale as StaleTransaction {
                attempt += 1
                guard attempt < Self.maxAttempts else { throw AppendError.tooMuchContention(stream: stale.stream) }
                try await Task.sleep(for: .microseconds(Int.random(in: 0...(100 * attempt))))
            }
        }
    }

    private static let maxAttempts = 50
}

/// Appends inside a caller's transaction, see ``EventStore/transaction(_:)``.
public struct EventStoreTransaction: Sendable {
    public let connection: PostgresConnection
    let logger: Logger

    /// Appends through `connection`, inside a transaction the caller opened on it (a
    /// reactor appends in its runner's transaction, so its output commits with its checkpoint).
    public init(connection: PostgresConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    /// Like ``EventStore/append(to:events:expected:)``; the events commit with the transaction.
    @discardableResult
    public func append(
        to stream: String, events: [NewEvent], expected: ExpectedVersion = .any
    ) async throws
        -> AppendResult
    {
        let request = AppendRequest(stream: stream, events: events, expected: expected)
        return try await appendBatch([request])[0].get()
    }

    /// Like ``EventStore/appendBatch(_:)``, in this transaction.
    ///
    /// The transaction's commit then waits for the WAL flush, whatever the caller set: a
    /// projection runner's batch commits without waiting (``synchronous_commit`` off), and a
    /// reactor's events must be durable before anyone reads them.
    public func appendBatch(_ requests: [AppendRequest]) async throws -> [Result<AppendResult, AppendError>] {
        guard !requests.isEmpty else { return [] }
        try await connection.query("SET LOCAL synchronous_commit = on", logger: logger)
        return try await LogWriter.write(requests, method: .insert, on: connection, logger: logger)
    }

    /// The events of `streams` whose type is one of `types`, each stream in version order (the
    /// streams by name), as this transaction sees them. A stream's versions commit in order, so
    /// this needs no horizon.
    public func readStreams(_ streams: [String], types: [String]) async throws -> [RecordedEvent] {
        guard !streams.isEmpty else { return [] }
        let rows = try await connection.query(
            """
            SELECT 0, tx_id::text, position, event_id, stream, version, type, schema_version,
                   data::text, metadata::text, recorded_at
            FROM events WHERE stream = ANY(\(streams)) AND type = ANY(\(types))
            ORDER BY stream, version
            """,
            logger: logger)
        return try await EventStore.recordedEvents(rows)
    }
}

/// The outcome of ``EventStore/appendBulk(_:allOrNothing:)``.
public struct BulkAppendResult: Sendable {
    public var appended = 0
    public var alreadyStored = 0
    /// Index in the input and reason of each refused event.
    public var refused: [(index: Int, error: AppendError)] = []
}

/// Rolls an all-or-nothing bulk append back (``EventStore/appendBulk(_:allOrNothing:)``).
private struct BulkRefusal: Error {
    let results: [Result<AppendResult, AppendError>]
}

/// Counts of ``EventStore/appendBatch(_:)``'s two paths (for tests and diagnostics).
public final class AppendPaths: Sendable {
    private let counts = Mutex<(oneStatement: Int, deferred: Int)>((0, 0))

    /// Batches written in one statement.
    public var oneStatement: Int { counts.withLock { $0.oneStatement } }
    /// Batches the one statement deferred to the full transaction (nothing written by it).
    public var deferred: Int { counts.withLock { $0.deferred } }

    func wroteInOneStatement() { counts.withLock { $0.oneStatement += 1 } }
    func deferredToTransaction() { counts.withLock { $0.deferred += 1 } }
}
