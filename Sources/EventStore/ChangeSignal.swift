import NIOCore
import NIOPosix
import Synchronization

/// A generation counter that tasks can wait on: ``bump()`` wakes everyone waiting for a
/// generation newer than the one they saw.
public final class ChangeSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var nextWaiter: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// The timeouts of waiters that gave one, cancelled when they are woken otherwise.
        var timers: [UInt64: Scheduled<Void>] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public var generation: UInt64 { state.withLock { $0.generation } }

    /// Waits under way, and the timeouts among them still scheduled (for tests).
    var pending: (waiters: Int, timers: Int) { state.withLock { ($0.waiters.count, $0.timers.count) } }

    public func bump() {
        let (waiters, timers) = state.withLock { state in
            state.generation &+= 1
            defer {
                state.waiters.removeAll(keepingCapacity: true)
                state.timers.removeAll(keepingCapacity: true)
            }
            return (Array(state.waiters.values), Array(state.timers.values))
        }
        for timer in timers { timer.cancel() }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns when the generation differs from `seen`, after `timeout`, or on cancellation.
    ///
    /// The timeout is a task scheduled on an event loop and cancelled (freed) when the wait ends
    /// otherwise. A `Task.sleep` raced against the change, as before, stays allocated until its
    /// deadline even when cancelled: the runners wait on the tail after every page, and under
    /// load tens of thousands of them were pending at once (8 MB of a server's idle memory).
    public func wait(after seen: UInt64, timeout: Duration) async {
        await wait(after: seen) { id in
            MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: TimeAmount(timeout)) {
                self.wake(id)
            }
        }
    }

    /// Returns when the generation differs from `seen`, or on cancellation.
    public func waitForChange(after seen: UInt64) async {
        await wait(after: seen, timer: nil)
    }

    private func wait(after seen: UInt64, timer: ((UInt64) -> Scheduled<Void>)?) async {
        let id = state.withLock { state in
            defer { state.nextWaiter &+= 1 }
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if state.generation != seen || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow {
                    continuation.resume()
                    return
                }
                guard let scheduled = timer?(id) else { return }
                // Woken already (a bump, a cancellation) before its timer was kept: drop it.
                let kept = state.withLock { state in
                    guard state.waiters[id] != nil else { return false }
                    state.timers[id] = scheduled
                    return true
                }
                if !kept { scheduled.cancel() }
            }
        } onCancel: {
            wake(id)
        }
    }

    /// Ends one wait (its timeout, its cancellation), at most once.
    private func wake(_ id: UInt64) {
        let (waiter, timer) = state.withLock { state in
            (state.waiters.removeValue(forKey: id), state.timers.removeValue(forKey: id))
        }
        timer?.cancel()
        waiter?.resume()
    }
}
