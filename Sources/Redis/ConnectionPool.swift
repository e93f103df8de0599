import Synchronization

/// Lends each caller a connection of its own (hiredis connections serve one command at a time),
/// opening new ones up to a limit and queueing callers beyond it, so concurrent tasks share a
/// few sockets instead of opening one each.
final class ConnectionPool: Sendable {
    private struct State {
        var idle: [RedisConnection] = []
        var count = 0
        var waiters: [CheckedContinuation<RedisConnection, any Error>] = []
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
        for waiter in waiters { waiter.resume(throwing: Self.shutdownError) }
    }

    private static let shutdownError = RedisError.connection("the Redis client is shut down")

    private func acquire() async throws -> RedisConnection {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<RedisConnection, any Error>? = state.withLock { state in
                if state.isShutdown { return .failure(Self.shutdownError) }
                if let connection = state.idle.popLast() { return .success(connection) }
                if state.count < maximum {
                    state.count += 1
                    return .success(makeConnection())  // cheap: it connects on first use
                }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
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
            if !state.waiters.isEmpty { return .handOver(state.waiters.removeFirst()) }
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
