import DequeModule
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Batches concurrent appends into shared transactions ("group commit").
///
/// Callers of ``append(_:)`` are queued; each of ``Options/flushers`` loops takes up to
/// ``Options/maxBatch`` queued requests (after waiting at most ``Options/linger`` for more to
/// arrive) and writes them in one transaction. Each caller is answered when that
/// transaction has committed, with its own result: a refused request (wrong expected
/// version) doesn't affect the others. If a batch fails as a whole, its requests are retried
/// one transaction each, so one bad request can't fail its neighbours.
///
/// Run it as a `Service`; on graceful shutdown it writes what is queued, then stops.
public final class GroupCommitAppender: Service, Sendable {
    public struct Options: Sendable {
        /// Most requests written in one transaction.
        public var maxBatch: Int = 500
        /// How long a flusher waits for a batch to fill once it has work (zero: write at once;
        /// batches still form from the requests that arrive while a transaction is in flight).
        public var linger: Duration = .zero
        /// Transactions in flight at once. Two measured best on 2 cores: fewer, fuller batches
        /// share each WAL flush (`vigil bench append --flushers N`).
        public var flushers: Int = 2
        /// Told the requests and events of every committed transaction (metrics).
        public var onCommit: (@Sendable (_ requests: Int, _ events: Int) -> Void)?

        public init(
            maxBatch: Int = 500, linger: Duration = .zero, flushers: Int = 2,
            onCommit: (@Sendable (_ requests: Int, _ events: Int) -> Void)? = nil
        ) {
            self.maxBatch = maxBatch
            self.linger = linger
            self.flushers = flushers
            self.onCommit = onCommit
        }
    }

    /// Counters since start, for benchmarks and metrics.
    public struct Statistics: Sendable {
        public var transactions = 0
        public var requests = 0
        public var fallbacks = 0
    }

    private struct Pending: Sendable {
        var id: UInt64
        var request: AppendRequest
        var continuation: CheckedContinuation<AppendResult, any Error>
    }

    private struct State {
        var queue = Deque<Pending>()
        var idleFlushers: [CheckedContinuation<Void, Never>] = []
        var isClosed = false
        var nextID: UInt64 = 0
        var statistics = Statistics()
    }

    private let store: EventStore
    private let options: Options
    private let state = Mutex(State())

    public init(store: EventStore, options: Options = Options()) {
        precondition(options.maxBatch >= 1 && options.flushers >= 1)
        self.store = store
        self.options = options
    }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    /// Appends `request` in the next group transaction and returns when it has committed.
    ///
    /// A caller cancelled while its request is still queued (the database went down, the
    /// server is stopping) gets `CancellationError` at once, and the request is not written.
    /// Once a transaction has taken it, the caller waits for that transaction's outcome: the
    /// write may commit, and the answer must say so.
    public func append(_ request: AppendRequest) async throws -> AppendResult {
        let id = state.withLock { state in
            defer { state.nextID &+= 1 }
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let wake: CheckedContinuation<Void, Never>?? = state.withLock { state in
                    if state.isClosed { return .none }
                    state.queue.append(Pending(id: id, request: request, continuation: continuation))
                    return .some(state.idleFlushers.popLast())
                }
                switch wake {
                case .none: continuation.resume(throwing: AppenderError.shutDown)
                case .some(let flusher): flusher?.resume()
                }
                // Cancelled before it was queued: the handler below found nothing to take.
                if Task.isCancelled { withdraw(id) }
            }
        } onCancel: {
            withdraw(id)
        }
    }

    /// Takes request `id` out of the queue, if no transaction has taken it yet, and answers its
    /// caller with `CancellationError`.
    private func withdraw(_ id: UInt64) {
        let pending = state.withLock { state -> Pending? in
            guard let index = state.queue.firstIndex(where: { $0.id == id }) else { return nil }
            return state.queue.remove(at: index)
        }
        pending?.continuation.resume(throwing: CancellationError())
    }

    /// Convenience for ``append(_:)``.
    @discardableResult
    public func append(
        to stream: String, events: [NewEvent], expected: ExpectedVersion = .any
    ) async throws
        -> AppendResult
    {
        try await append(AppendRequest(stream: stream, events: events, expected: expected))
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<options.flushers {
                    group.addTask { await self.flushLoop() }
                }
            }
        } onGracefulShutdown: {
            self.close()
        }
    }

    private func close() {
        let idle = state.withLock { state in
            state.isClosed = true
            defer { state.idleFlushers.removeAll() }
            return state.idleFlushers
        }
        for flusher in idle { flusher.resume() }
    }

    private func flushLoop() async {
        await withTaskCancellationHandler {
            while let batch = await nextBatch() {
                await flush(batch)
            }
        } onCancel: {
            self.close()
        }
    }

    /// Waits for work; nil once closed and drained.
    private func nextBatch() async -> [Pending]? {
        while true {
            let (batch, closed) = state.withLock { state in
                (state.queue.isEmpty ? [] : take(from: &state), state.isClosed)
            }
            if !batch.isEmpty {
                guard options.linger > .zero, batch.count < options.maxBatch else { return batch }
                try? await Task.sleep(for: options.linger)
                return batch + state.withLock { take(from: &$0, max: options.maxBatch - batch.count) }
            }
            if closed { return nil }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if !state.queue.isEmpty || state.isClosed { return true }
                    state.idleFlushers.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    private func take(from state: inout State, max: Int? = nil) -> [Pending] {
        let count = Swift.min(state.queue.count, max ?? options.maxBatch)
        let batch = Array(state.queue.prefix(count))
        state.queue.removeFirst(count)
        return batch
    }

    private func flush(_ batch: [Pending]) async {
        guard !batch.isEmpty else { return }
        do {
            let results = try await store.appendBatch(batch.map(\.request))
            record(transactions: 1, requests: batch.count, fallback: false)
            options.onCommit?(batch.count, batch.reduce(0) { $0 + $1.request.events.count })
            for (pending, result) in zip(batch, results) { pending.continuation.resume(with: result) }
        } catch let error as ConnectionLeaseTimeout {
            // Nothing was begun, and one by one would wait again for each: all get the error.
            record(transactions: 0, requests: batch.count, fallback: false)
            for pending in batch { pending.continuation.resume(throwing: error) }
        } catch {
            // The batch failed as a whole (e.g. the same new event id raced in from two
            // batches): give every request its own transaction and its own answer.
            if batch.count > 1 {
                store.logger.debug("group commit failed, retrying one by one", metadata: ["error": "\(error)"])
            }
            record(transactions: batch.count, requests: batch.count, fallback: batch.count > 1)
            for pending in batch {
                do {
                    let result = try await store.appendBatch([pending.request])[0]
                    if case .success = result { options.onCommit?(1, pending.request.events.count) }
                    pending.continuation.resume(with: result)
                } catch {
                    pending.continuation.resume(throwing: error)
                }
            }
        }
    }

    private func record(transactions: Int, requests: Int, fallback: Bool) {
        state.withLock { state in
            state.statistics.transactions += transactions
            state.statistics.requests += requests
            if fallback { state.statistics.fallbacks += 1 }
        }
    }
}

public enum AppenderError: Error, CustomStringConvertible {
    case shutDown

    public var description: String { "the appender is shut down" }
}
