import Synchronization

/// Runs the bodies given to it one at a time, in arrival order.
///
/// Camera commands go through one: concurrent claims of one reservation stream would otherwise
/// each hold a pooled connection in a transaction queued on that stream's row lock, and 32 of
/// them starve the pool (the availability probe then reports PostgreSQL down). Across
/// processes the log still decides (expected versions); this only keeps one process polite.
final class SerialGate: Sendable {
    private struct State {
        var busy = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func run<Value>(_ body: () async throws -> Value) async throws -> Value {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { continuation in
            let enter = state.withLock { state in
                if state.busy {
                    state.waiters.append(continuation)
                    return false
                }
                state.busy = true
                return true
            }
            if enter { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { state in
            if state.waiters.isEmpty {
                state.busy = false
                return nil as CheckedContinuation<Void, Never>?
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
