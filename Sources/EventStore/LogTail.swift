/// Follows the log from a checkpoint: catches up from the table, then waits for new events
/// and delivers each committed event exactly once, in log order.
///
/// It is woken by the ``LogNotifier`` and always reads the table. When committed events
/// wait behind an older transaction (which may end with a rollback that notifies nobody),
/// it polls with a short backoff until they become readable. Ends (returns nil) when its
/// task is cancelled.
public struct LogTail: AsyncSequence, Sendable {
    public typealias Element = RecordedEvent

    let store: EventStore
    let start: Checkpoint
    let filter: LogFilter
    let batchSize: Int
    let signal: ChangeSignal
    /// Fallback when no notification arrives (a notification can be lost while the listening
    /// connection reconnects); correctness never depends on it.
    let idlePoll: Duration

    public func makeAsyncIterator() -> Iterator {
        Iterator(tail: self, checkpoint: start)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let tail: LogTail
        /// Where the next read starts (ahead of the events still buffered).
        private var checkpoint: Checkpoint
        private var buffer: [RecordedEvent] = []
        private var index = 0
        private var backoff = Duration.milliseconds(2)

        init(tail: LogTail, checkpoint: Checkpoint) {
            self.tail = tail
            self.checkpoint = checkpoint
        }

        public mutating func next() async throws -> RecordedEvent? {
            while !Task.isCancelled {
                if index < buffer.count {
                    defer { index += 1 }
                    return buffer[index]
                }
                let seen = tail.signal.generation
                let page = try await tail.store.read(after: checkpoint, filter: tail.filter, limit: tail.batchSize)
                checkpoint = page.next
                buffer = page.events
                index = 0
                if !page.events.isEmpty || page.isFull {
                    backoff = .milliseconds(2)
                    continue
                }
                if page.pendingBeyondHorizon {
                    await tail.signal.wait(after: seen, timeout: backoff)
                    backoff = Swift.min(backoff * 2, .milliseconds(100))
                } else {
                    await tail.signal.wait(after: seen, timeout: tail.idlePoll)
                }
            }
            return nil
        }
    }
}

extension EventStore {
    /// Follows the log after `checkpoint` (``Checkpoint/start`` for the whole log).
    public func tail(
        from checkpoint: Checkpoint,
        filter: LogFilter = .all,
        notifier: LogNotifier,
        batchSize: Int = 1000,
        idlePoll: Duration = .seconds(5)
    ) -> LogTail {
        LogTail(
            store: self,
            start: checkpoint,
            filter: filter,
            batchSize: batchSize,
            signal: notifier.signal,
            idlePoll: idlePoll
        )
    }
}
