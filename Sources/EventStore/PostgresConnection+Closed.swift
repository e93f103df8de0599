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
    /// the write is dropped without an error, and cancelling the task doesn't reach it. A
    /// long-lived user of one connection (a projection runner holding its lease) would then wait
    /// forever after a PostgreSQL restart. Here the body runs in a task of its own, and a closed
    /// connection ends the wait: that task is cancelled and left behind (it may stay suspended on
    /// the dead connection, but can write nothing through it). Use it for long-lived work, not
    /// per query: each call registers a callback on the connection's close future.
    public func whileOpen<Value: Sendable>(
        _ body: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        if isClosed { throw PostgresConnectionClosed() }
        let work = Task { try await body() }
        let closed = closeFuture
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
                let resumed = Mutex(false)
                let resume: @Sendable (Result<Value, any Error>) -> Void = { result in
                    let first = resumed.withLock { done in
                        defer { done = true }
                        return !done
                    }
                    if first { continuation.resume(with: result) }
                }
                closed.whenComplete { _ in
                    work.cancel()
                    resume(.failure(PostgresConnectionClosed()))
                }
                Task { resume(await work.result) }
            }
        } onCancel: {
            work.cancel()
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
    let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Value, any Error>?, Never>) in
        let resumed = Mutex(false)
        let resume: @Sendable (Result<Value, any Error>?) -> Void = { value in
            let first = resumed.withLock { done in
                defer { done = true }
                return !done
            }
            if first { continuation.resume(returning: value) }
        }
        Task { resume(await task.result) }
        Task {
            await timer.value
            resume(nil)
        }
    }
    task.cancel()
    timer.cancel()
    return outcome
}
