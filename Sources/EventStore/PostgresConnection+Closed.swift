import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// The connection closed while work on it was under way (the server went away, or terminated
/// the session).
public struct PostgresConnectionClosed: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "the PostgreSQL connection was closed" }
}

extension PostgresConnection {
    /// Runs `body`, which works on this connection, until it returns or the connection closes,
    /// whichever comes first; the latter throws ``PostgresConnectionClosed``.
    ///
    /// PostgresNIO (1.33) never completes a query sent on a connection that has already closed:
    /// the write is dropped without an error, and cancelling the task doesn't reach it. Whoever
    /// waits on such a query waits forever: a projection runner holding its lease after a
    /// PostgreSQL restart, or an append whose `BEGIN` went through just before PostgreSQL
    /// stopped (its request never answered, and SIGTERM could not stop the server). Here the
    /// body runs in a task of its own, and a closed connection ends the wait: that task is
    /// cancelled and left behind (it may stay suspended on the dead connection, but can write
    /// nothing through it).
    ///
    /// Cheap enough per query: a connection has one close callback however many calls wait on
    /// it (``ClosedConnectionWatch``).
    public func whileOpen<Value: Sendable>(
        _ body: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        let connection = self
        let work = Task { try await body() }
        return try await withTaskCancellationHandler {
            try await firstOf { (finish: @escaping @Sendable (Result<Value, any Error>) -> Void) in
                let onClose: @Sendable () -> Void = {
                    // The close is the answer: settled before the work is cancelled, or the
                    // work's own CancellationError could finish first on another thread (seen
                    // once in a clean-clone run: CancellationTests got CancellationError).
                    finish(.failure(PostgresConnectionClosed()))
                    work.cancel()
                }
                guard let token = ClosedConnectionWatch.shared.register(connection, onClose: onClose) else {
                    onClose()
                    return
                }
                Task {
                    let result = await work.result
                    ClosedConnectionWatch.shared.unregister(connection, token: token)
                    finish(result)
                }
            }.get()
        } onCancel: {
            work.cancel()
        }
    }
}

/// The value of whichever racer finishes first: `start` hands every racer the same `finish`,
/// and only the first call counts.
func firstOf<Value: Sendable>(_ start: (@escaping @Sendable (Value) -> Void) -> Void) async -> Value {
    await withCheckedContinuation { (continuation: CheckedContinuation<Value, Never>) in
        let finished = Mutex(false)
        start { value in
            let first = finished.withLock { done in
                defer { done = true }
                return !done
            }
            if first { continuation.resume(returning: value) }
        }
    }
}

/// Runs `work` in a task of its own and waits for it at most `timeout`: its result, or nil
/// when it took longer (it is then cancelled and not waited for; see
/// ``PostgresConnection/whileOpen(_:)`` for the queries that never answer).
public func withDeadline<Value: Sendable>(
    _ timeout: Duration, _ work: @escaping @Sendable () async throws -> Value
) async -> Result<Value, any Error>? {
    let task = Task { try await work() }
    let timer = Task { try? await Task.sleep(for: timeout) }
    let outcome = await firstOf { (finish: @escaping @Sendable (Result<Value, any Error>?) -> Void) in
        Task { finish(await task.result) }
        Task {
            await timer.value
            finish(nil)
        }
    }
    task.cancel()
    timer.cancel()
    return outcome
}

/// The rows of a query, read to the end (see ``PostgresConnection/guardedQuery(_:logger:)``).
/// An `AsyncSequence` of `PostgresRow`, so PostgresNIO's `decode(…)` works on it as on a
/// `PostgresRowSequence`.
public struct CollectedRows: AsyncSequence, Sendable {
    public typealias Element = PostgresRow
    public let rows: [PostgresRow]

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: IndexingIterator<[PostgresRow]>
        public mutating func next() async throws -> PostgresRow? { base.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: rows.makeIterator()) }
}

/// Wakes the queries waiting on a connection when it closes: one callback per connection on its
/// close future, however many queries run on it (a callback per query would pile up on a
/// pooled connection that lives for hours).
///
/// Process-wide on purpose: it is keyed by connection, and any code holding a connection must
/// reach the same registry (an entry lives exactly as long as its connection is open).
final class ClosedConnectionWatch: Sendable {
    static let shared = ClosedConnectionWatch()

    /// The waiters of one open connection. The connection is held weakly and compared on every
    /// lookup: an object identifier can be reused by a new connection once an old one is freed,
    /// and a new connection must get a close callback of its own.
    private struct Entry {
        weak var connection: PostgresConnection?
        var waiters: [UInt64: @Sendable () -> Void] = [:]
    }

    private struct State {
        var nextToken: UInt64 = 0
        var entries: [ObjectIdentifier: Entry] = [:]
    }

    private let state = Mutex(State())

    /// Calls `onClose` when `connection` closes, unless ``unregister(_:token:)`` comes first.
    /// Returns nil (and calls nothing) when it is closed already.
    func register(_ connection: PostgresConnection, onClose: @escaping @Sendable () -> Void) -> UInt64? {
        if connection.isClosed { return nil }
        let key = ObjectIdentifier(connection)
        let (token, isNew) = state.withLock { state in
            defer { state.nextToken &+= 1 }
            var isNew = false
            if state.entries[key]?.connection !== connection {
                state.entries[key] = Entry(connection: connection)
                isNew = true
            }
            state.entries[key]!.waiters[state.nextToken] = onClose
            return (state.nextToken, isNew)
        }
        // Registered once per open connection; fires at once if it has closed meanwhile.
        if isNew {
            connection.closeFuture.whenComplete { [weak connection] _ in self.closed(key, connection) }
        }
        return token
    }

    func unregister(_ connection: PostgresConnection, token: UInt64) {
        let key = ObjectIdentifier(connection)
        state.withLock { state in
            guard state.entries[key]?.connection === connection else { return }
            state.entries[key]?.waiters[token] = nil
        }
    }

    private func closed(_ key: ObjectIdentifier, _ connection: PostgresConnection?) {
        let waiters = state.withLock { state -> [UInt64: @Sendable () -> Void] in
            // Only this connection's entry (a freed one's key may belong to a newer connection).
            guard let entry = state.entries[key],
                connection == nil ? entry.connection == nil : entry.connection === connection
            else { return [:] }
            state.entries[key] = nil
            return entry.waiters
        }
        for onClose in waiters.values { onClose() }
    }
}

extension PostgresConnection {
    /// `query`, read to the end; throws ``PostgresConnectionClosed`` rather than wait forever
    /// when the connection closes before the answer (see ``whileOpen(_:)``).
    @discardableResult
    public func guardedQuery(_ query: PostgresQuery, logger: Logger) async throws -> CollectedRows {
        let connection = self
        return try await whileOpen { CollectedRows(rows: try await connection.query(query, logger: logger).collect()) }
    }
}

/// No pooled connection could be leased within the time a write may wait for one (PostgreSQL
/// refuses new connections and the pool has none free): the write was not begun.
public struct ConnectionLeaseTimeout: Error, CustomStringConvertible {
    public let timeout: Duration

    public init(timeout: Duration) { self.timeout = timeout }

    public var description: String { "no pooled PostgreSQL connection within \(timeout)" }
}

/// Which came first: a lease, or its timeout.
private final class LeaseRace: Sendable {
    enum State { case waiting, leased, expired }
    private let state = Mutex(State.waiting)

    /// Moves from waiting to `next`; false when the other side came first.
    func win(_ next: State) -> Bool {
        state.withLock { state in
            guard state == .waiting else { return false }
            state = next
            return true
        }
    }
}

extension PostgresClient {
    /// Like ``withOpenConnection(_:)``, but gives up with ``ConnectionLeaseTimeout`` when no
    /// connection is leased within `timeout`. Then `body` never runs: a write that gave up has
    /// written nothing, so the error the caller gets is the whole truth. (A connection that
    /// comes a moment later is handed back unused: whichever of the lease and the timeout comes
    /// first decides, under a lock.)
    public func withOpenConnection<Value: Sendable>(
        leaseTimeout timeout: Duration, _ body: @escaping @Sendable (PostgresConnection) async throws -> Value
    ) async throws -> Value {
        let race = LeaseRace()
        return try await withThrowingTaskGroup(of: Value?.self) { group in
            group.addTask {
                try await self.withOpenConnection { connection in
                    guard race.win(.leased) else { throw ConnectionLeaseTimeout(timeout: timeout) }
                    return try await body(connection)
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                if race.win(.expired) { throw ConnectionLeaseTimeout(timeout: timeout) }
                return nil
            }
            defer { group.cancelAll() }
            while let next = try await group.next() {
                if let value = next { return value }
            }
            throw CancellationError()
        }
    }

    /// `body` on a pooled connection, ended by ``PostgresConnectionClosed`` if that connection
    /// closes first (see ``PostgresConnection/whileOpen(_:)``): every user of a pooled
    /// connection that runs queries on it directly goes through here, so none can wait forever
    /// on one that closed under it.
    public func withOpenConnection<Value: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Value
    ) async throws -> Value {
        try await withConnection { connection in
            try await connection.whileOpen { try await body(connection) }
        }
    }

    /// `query` on a pooled connection, read to the end; throws ``PostgresConnectionClosed``
    /// when the connection closes first instead of waiting forever (the pool can hand out a
    /// connection whose close it hasn't seen yet: at a PostgreSQL restart, or when its session
    /// is terminated).
    ///
    /// A connection handed out already closed (its session ended before this query could be
    /// sent, so nothing ran) is given back and the query runs on another, up to three times.
    @discardableResult
    public func guardedQuery(_ query: PostgresQuery, logger: Logger) async throws -> CollectedRows {
        try await onOpenConnection { try await $0.guardedQuery(query, logger: logger) }
    }

    /// ``guardedQuery(_:logger:)`` as a named prepared statement (see ``PreparedStatements``
    /// for which statements may).
    @discardableResult
    public func guardedPreparedQuery(_ query: PostgresQuery, logger: Logger) async throws -> CollectedRows {
        try await onOpenConnection { try await $0.guardedPreparedQuery(query, logger: logger) }
    }

    /// `query` on `connection` when the caller holds one (and waits for the answer anyway), else
    /// on a pooled one; `prepared`: as a named prepared statement.
    @discardableResult
    public func guardedQuery(
        _ query: PostgresQuery, prepared: Bool = false, on connection: PostgresConnection?, logger: Logger
    ) async throws -> CollectedRows {
        switch (connection, prepared) {
        case (let connection?, false): try await connection.guardedQuery(query, logger: logger)
        case (let connection?, true): try await connection.guardedPreparedQuery(query, logger: logger)
        case (nil, false): try await guardedQuery(query, logger: logger)
        case (nil, true): try await guardedPreparedQuery(query, logger: logger)
        }
    }

    /// `run` on a pooled connection that was open when handed out, trying another up to three
    /// times (see ``guardedQuery(_:logger:)``).
    private func onOpenConnection(
        _ run: @escaping @Sendable (PostgresConnection) async throws -> CollectedRows
    ) async throws -> CollectedRows {
        var attempt = 0
        while true {
            attempt += 1
            let rows: CollectedRows? = try await withConnection { connection in
                if connection.isClosed && attempt < 3 { return nil }
                return try await run(connection)
            }
            if let rows { return rows }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
