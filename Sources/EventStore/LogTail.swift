import Synchronization

/// Follows the log from a checkpoint page by page: catches up from the table, then waits for
/// new events. Each committed event is in exactly one page, pages come in log order.
///
/// It is woken by the ``LogNotifier`` and always reads the table. When committed events wait
/// behind an older transaction (which may end with a rollback that notifies nobody), it polls
/// with a short backoff until they become readable. A page is delivered when it has events,
/// or when its ``LogPage/next`` moved past events the filter skipped (so a consumer can save
/// that progress). Ends (returns nil) when its task is cancelled. Started from a checkpoint
/// beyond the read horizon (``LogReadError/beyondHorizon(_:horizon:)``), it waits until the
/// horizon has passed it.
public struct LogPages: AsyncSequence, Sendable {
    public typealias Element = LogPage

    let store: EventStore
    let start: Checkpoint
    let filter: LogFilter
    let batchSize: Int
    let signal: ChangeSignal
    /// Fallback when no notification arrives (a notification can be lost while the listening
    /// connection reconnects); correctness never depends on it.
    let idlePoll: Duration
    /// When set, a quiet log yields an empty page (``LogPage/next`` unchanged) this often.
    let heartbeat: Heartbeat?

    public func makeAsyncIterator() -> Iterator {
        Iterator(pages: self, checkpoint: start)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let pages: LogPages
        /// Where the next read starts.
        private var checkpoint: Checkpoint
        private var backoff = Duration.milliseconds(2)

        init(pages: LogPages, checkpoint: Checkpoint) {
            self.pages = pages
            self.checkpoint = checkpoint
        }

        public mutating func next() async throws -> LogPage? {
            while !Task.isCancelled {
                let seen = pages.signal.generation
                let page: LogPage
                do {
                    page = try await pages.store.read(after: checkpoint, filter: pages.filter, limit: pages.batchSize)
                } catch LogReadError.beyondHorizon {
                    // Started from a compare-only checkpoint: wait until the horizon passes it
                    // (then nothing older can still commit), never read past older events.
                    await pages.signal.wait(after: seen, timeout: backoff)
                    backoff = Swift.min(backoff * 2, .milliseconds(100))
                    continue
                }
                let advanced = page.next > checkpoint
                checkpoint = page.next
                if !page.events.isEmpty || page.isFull {
                    backoff = .milliseconds(2)
                    return page
                }
                if advanced { return page }
                if page.pendingBeyondHorizon {
                    await pages.signal.wait(after: seen, timeout: backoff)
                    backoff = Swift.min(backoff * 2, .milliseconds(100))
                } else if let heartbeat = pages.heartbeat {
                    await pages.signal.wait(after: seen, timeout: Swift.min(heartbeat.interval, pages.idlePoll))
                    if pages.signal.generation == seen && !Task.isCancelled { return page }
                } else {
                    await pages.signal.wait(after: seen, timeout: pages.idlePoll)
                }
            }
            return nil
        }
    }
}

/// Follows the log event by event (see ``LogPages``).
public struct LogTail: AsyncSequence, Sendable {
    public typealias Element = RecordedEvent

    let pages: LogPages

    public func makeAsyncIterator() -> Iterator {
        Iterator(pages: pages.makeAsyncIterator())
    }

    public struct Iterator: AsyncIteratorProtocol {
        var pages: LogPages.Iterator
        private var buffer: [RecordedEvent] = []
        private var index = 0

        init(pages: LogPages.Iterator) { self.pages = pages }

        public mutating func next() async throws -> RecordedEvent? {
            while index == buffer.count {
                guard let page = try await pages.next() else { return nil }
                buffer = page.events
                index = 0
            }
            defer { index += 1 }
            return buffer[index]
        }
    }
}

extension EventStore {
    /// Follows the log after `checkpoint` (``Checkpoint/start`` for the whole log), page by page.
    public func pages(
        from checkpoint: Checkpoint,
        filter: LogFilter = .all,
        notifier: LogNotifier,
        batchSize: Int = 1000,
        idlePoll: Duration = .seconds(5),
        heartbeat: Heartbeat? = nil
    ) -> LogPages {
        LogPages(
            store: self,
            start: checkpoint,
            filter: filter,
            batchSize: batchSize,
            signal: notifier.signal,
            idlePoll: idlePoll,
            heartbeat: heartbeat
        )
    }

    /// Follows the log after `checkpoint` (``Checkpoint/start`` for the whole log), event by event.
    public func tail(
        from checkpoint: Checkpoint,
        filter: LogFilter = .all,
        notifier: LogNotifier,
        batchSize: Int = 1000,
        idlePoll: Duration = .seconds(5)
    ) -> LogTail {
        LogTail(
            pages: pages(from: checkpoint, filter: filter, notifier: notifier, batchSize: batchSize, idlePoll: idlePoll)
        )
    }
}

/// Where a follower of the log gets its pages: the table (``TablePages``), or a tail the
/// process already runs, whose recent events it keeps (the server's log broadcaster), so that
/// a commit is read once per process instead of once per follower.
public protocol LogPageSource: Sendable {
    /// The log's pages after `checkpoint` that `filter` takes, as ``LogPages`` yields them:
    /// every committed event in exactly one page, in log order, a page when ``LogPage/next``
    /// moved past skipped events; with `heartbeat`, an empty page when the log is quiet that long.
    func pages(
        from checkpoint: Checkpoint, filter: LogFilter, batchSize: Int, heartbeat: Heartbeat?
    )
        -> any AsyncSequence<LogPage, any Error>
}

/// How long a follower caught up with a quiet log waits before it yields an empty page
/// (``LogPage/next`` unchanged). Its owner may change it between pages: a projection runner
/// shortens it while it holds a checkpoint move it has put off, so the move is written soon
/// after the log goes quiet.
public final class Heartbeat: Sendable {
    private let current: Mutex<Duration>

    public init(_ interval: Duration) { current = Mutex(interval) }

    public var interval: Duration {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }
}

/// Pages read from the table, woken by the notifier (``EventStore/pages(from:filter:notifier:batchSize:idlePoll:heartbeat:)``).
public struct TablePages: LogPageSource {
    let store: EventStore
    let notifier: LogNotifier

    public init(store: EventStore, notifier: LogNotifier) {
        self.store = store
        self.notifier = notifier
    }

    public func pages(
        from checkpoint: Checkpoint, filter: LogFilter, batchSize: Int, heartbeat: Heartbeat?
    )
        -> any AsyncSequence<LogPage, any Error>
    {
        store.pages(from: checkpoint, filter: filter, notifier: notifier, batchSize: batchSize, heartbeat: heartbeat)
    }
}
