import Dispatch
import Synchronization

/// Lends each caller a connection of its own (hiredis connections serve one command at a time),
/// opening new ones up to a limit and queueing callers beyond it, so concurrent tasks share a
/// few sockets instead of opening one each.
final class ConnectionPool: Sendable {
    private struct State {
        var idle: [RedisConnection] = []
        var count = 0
        var waiters: [(id: UInt64, continuation: CheckedContinuation<RedisConnection, any Error>)] = []
        var nextWaiter: UInt64 = 0
        var isShutdown = false
    }

    private let state = Mutex(State())
    private let maximum: Int
    private let makeConnection: @Sendable () -> RedisConnection

    init(maximum: Int, makeConnection: @escaping @Sendable () -> RedisConnection) {
        precondition(maximum > 0, "a connection pool needs at least one connection")
        self.maximum = maximum
        self.makeConnection = makeConnection
    }

    func withConnection<Value>(_ body: (RedisConnection) async throws -> Value) async throws -> Value {
        let connection = try await acquire()
        defer { release(connection) }
        return try await body(connection)
    }

    /// Closes the idle connections now and the others when they come back; waiting and later
    /// callers get ``RedisError/connection(_:)``.
    func shutdown() {
        let (idle, waiters) = state.withLock { state in
            state.isShutdown = true
            state.count -= state.idle.count
            defer {
                state.idle = []
                state.waiters = []
            }
            return (state.idle, state.waiters)
        }
        for connection in idle { connection.close() }
        for waiter in waiters { waiter.continuation.resume(throwing: Self.shutdownError) }
    }

    private static let shutdownError = RedisError.connection("the Redis client is shut down")

    /// Runs one command that must answer within `limit`, waiting for a connection included.
    /// When it doesn't, the caller gets ``RedisError/timeout(_:)`` at once, and the connection,
    /// still busy with the command, leaves the pool: it is closed once the command is over
    /// (hiredis can't be interrupted), and the next caller gets a fresh one.
    func execute(_ arguments: [[UInt8]], socketTimeout: Duration, within limit: Duration) async throws -> RedisValue {
        let deadline =
            DispatchTime.now()
            + .nanoseconds(
                Int(
                    limit.components.seconds * 1_000_000_000
                        + limit.components.attoseconds / 1_000_000_000))
        let connection = try await acquire(before: deadline, limit: limit)
        return try await withCheckedThrowingContinuation { continuation in
            // Whichever comes first, the reply or the deadline, answers the caller.
            let once = Once()
            let answer: @Sendable (Result<RedisValue, any Error>) -> Bool = { result in
                let first = once.claim()
                if first { continuation.resume(with: result) }
                return first
            }
            connection.submit(arguments, timeout: socketTimeout) { result in
                if answer(result) { self.release(connection) }
            }
            DispatchQueue.global().asyncAfter(deadline: deadline) {
                if answer(.failure(RedisError.timeout(limit))) { self.discard(connection) }
            }
        }
    }

    private func acquire(before deadline: DispatchTime? = nil, limit: Duration = .zero) async throws -> RedisConnection
    {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<RedisConnection, any Error>? = state.withLock { state in
                if state.isShutdown { return .failure(Self.shutdownError) }
                if let connection = state.idle.popLast() { return .success(connection) }
                if state.count < maximum {
                    state.count += 1
                    return .success(makeConnection())  // cheap: it connects on first use
                }
                let id = state.nextWaiter
                state.nextWaiter += 1
                state.waiters.append((id, continuation))
                if let deadline {
                    DispatchQueue.global().asyncAfter(deadline: deadline) { self.giveUp(waiter: id, limit: limit) }
                }
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    /// Ends the wait of `waiter` if it is still waiting for a connection.
    private func giveUp(waiter id: UInt64, limit: Duration) {
        let waiter = state.withLock { state in
            state.waiters.firstIndex { $0.id == id }.map { state.waiters.remove(at: $0).continuation }
        }
        waiter?.resume(throwing: RedisError.timeout(limit))
    }

    /// Takes a connection out of the pool for good (it timed out mid-command, so its state is
    /// unknown); a waiter gets a new connection in its place.
    private func discard(_ connection: RedisConnection) {
        let waiter: CheckedContinuation<RedisConnection, any Error>? = state.withLock { state in
            if !state.isShutdown, !state.waiters.isEmpty { return state.waiters.removeFirst().continuation }
            state.count -= 1
            return nil
        }
        connection.close()
        waiter?.resume(returning: makeConnection())
    }

    private func release(_ connection: RedisConnection) {
        enum Next {
            case handOver(CheckedContinuation<RedisConnection, any Error>)
            case keep
            case close
        }
        let next: Next = state.withLock { state in
            if state.isShutdown {
                state.count -= 1
                return .close
            }
            if !state.waiters.isEmpty { return .handOver(state.waiters.removeFirst().continuation) }
            state.idle.append(connection)
            return .keep
        }
        switch next {
        case .handOver(let waiter): waiter.resume(returning: connection)
        case .keep: break
        case .close: connection.close()
        }
    }
}

/// True for the first caller of ``claim()`` only.
private final class Once: Sendable {
    private let claimed = Mutex(false)

    func claim() -> Bool {
        claimed.withLock { claimed in
            defer { claimed = true }
            return !claimed
        }
    }
}
