import DequeModule
import EventStore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// One tail of the log per server process, feeding every `/ws/log` socket of it: the table is
/// read once per page of events, not once per client, and each event is rendered once.
///
/// It keeps the most recent events (`ringCapacity`) so that a client close behind, or one that
/// drops back, joins without a query. A client further behind catches up from the table by
/// itself (``LogSocket``) and then subscribes here. Each subscriber has a bounded buffer
/// (`bufferCapacity` messages): one that overflows is detached, marked, and falls back to
/// catch-up reads from its last delivered checkpoint — never a silent drop.
///
/// Every instance runs its own tail over the same table, woken by LISTEN/NOTIFY: an event
/// appended through one instance reaches the sockets of all of them.
final class LogBroadcaster: Service, Sendable {
    /// An event, and its `/ws/log` message: rendered once, when a socket first needs it (a
    /// server without sockets renders nothing).
    final class Item: Sendable {
        let event: RecordedEvent
        private let rendered = Mutex<ByteBuffer?>(nil)

        init(event: RecordedEvent) { self.event = event }

        var checkpoint: Checkpoint { event.checkpoint }

        var message: ByteBuffer {
            rendered.withLock { rendered in
                if let rendered { return rendered }
                let message = LogSocket.message(event)
                rendered = message
                return message
            }
        }
    }

    enum Delivery: Sendable {
        case event(Item)
        /// The tail moved past events the subscriber's filter skipped.
        case progress(Checkpoint)

        var checkpoint: Checkpoint {
            switch self {
            case .event(let item): item.checkpoint
            case .progress(let checkpoint): checkpoint
            }
        }
    }

    /// A socket's place at the broadcaster.
    final class Subscription: Sendable {
        let id: UInt64
        let stream: AsyncStream<Delivery>
        let continuation: AsyncStream<Delivery>.Continuation
        let filter: LogFilter
        /// Deliveries at or before this are skipped (the socket sent them already).
        let after: Checkpoint
        private let state = Mutex<(overflowed: Bool, lastProgress: ContinuousClock.Instant)>((false, .now))

        init(id: UInt64, after: Checkpoint, filter: LogFilter, capacity: Int) {
            self.id = id
            self.after = after
            self.filter = filter
            (stream, continuation) = AsyncStream.makeStream(
                of: Delivery.self, bufferingPolicy: .bufferingOldest(capacity))
        }

        /// Whether the buffer overflowed (the stream then ended: catch up from the table).
        var overflowed: Bool { state.withLock { $0.overflowed } }

        /// Offers a delivery; false when it did not fit (the subscription is then over).
        func offer(_ delivery: Delivery) -> Bool {
            if case .dropped = continuation.yield(delivery) {
                state.withLock { $0.overflowed = true }
                continuation.finish()
                return false
            }
            return true
        }

        func matches(_ item: Item) -> Bool {
            item.checkpoint > after && filter.takes(item.event)
        }

        /// A progress delivery is due: at most one a second while the filter skips everything.
        func progressDue() -> Bool {
            state.withLock { state in
                guard ContinuousClock.now - state.lastProgress >= .seconds(1) else { return false }
                state.lastProgress = .now
                return true
            }
        }
    }

    private struct State {
        /// The most recent events, oldest first: every event after `ringStart` up to `position`.
        var ring = Deque<Item>()
        /// nil until the tail has started.
        var ringStart: Checkpoint?
        /// Where the tail has read up to.
        var position = Checkpoint.start
        var subscribers: [UInt64: Subscription] = [:]
        var nextID: UInt64 = 0
        var isStopped = false
    }

    private let store: EventStore
    private let notifier: LogNotifier
    private let logger: Logger
    let ringCapacity: Int
    let bufferCapacity: Int
    private let state = Mutex(State())
    /// Subscriptions that overflowed, since the start (for `/api/projections`-style reports and tests).
    private let overflows = Atomic<Int>(0)
    /// The tail's failures, for `/api/system/health/websocket`.
    let health = TailHealth()
    /// Bumped whenever the tail has read a page (``SharedTailPages`` waits on it).
    let progress = ChangeSignal()

    /// Told of every page the tail reads, in log order, before any socket is.
    private let observers: [any LogObserver]

    init(
        store: EventStore, notifier: LogNotifier, logger: Logger, ringCapacity: Int, bufferCapacity: Int,
        observers: [any LogObserver] = []
    ) {
        self.store = store
        self.notifier = notifier
        self.logger = logger
        self.observers = observers
        self.ringCapacity = max(1, ringCapacity)
        self.bufferCapacity = max(1, bufferCapacity)
    }

    var overflowCount: Int { overflows.load(ordering: .relaxed) }

    /// Where the tail has read up to.
    var position: Checkpoint { state.withLock { $0.position } }

    /// Whether a subscriber that has seen everything up to `checkpoint` can join without a gap.
    func covers(_ checkpoint: Checkpoint) -> Bool {
        state.withLock { state in state.ringStart.map { $0 <= checkpoint } ?? false }
    }

    /// Joins after `checkpoint`: the ring's later events are delivered first, then every new one.
    /// nil when the ring no longer reaches back that far (catch up from the table first), or
    /// the broadcaster has stopped.
    func subscribe(after checkpoint: Checkpoint, filter: LogFilter) -> Subscription? {
        let subscription = join(after: checkpoint, filter: filter)
        if subscription != nil {
            logger.debug("a /ws/log socket joined the live tail", metadata: ["after": "\(checkpoint)"])
        }
        return subscription
    }

    private func join(after checkpoint: Checkpoint, filter: LogFilter) -> Subscription? {
        state.withLock { state in
            guard !state.isStopped, let start = state.ringStart, start <= checkpoint else { return nil }
            state.nextID += 1
            let subscription = Subscription(
                id: state.nextID, after: checkpoint, filter: filter, capacity: bufferCapacity)
            for item in state.ring where subscription.matches(item) {
                guard subscription.offer(.event(item)) else {
                    fellBehind(1)
                    return subscription
                }
            }
            state.subscribers[subscription.id] = subscription
            return subscription
        }
    }

    func unsubscribe(_ subscription: Subscription) {
        _ = state.withLock { $0.subscribers.removeValue(forKey: subscription.id) }
        subscription.continuation.finish()
    }

    var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    /// Lets go of the recent events: the log has gone quiet (``IdleMemory``), so every reader
    /// that keeps up has them, and one that comes back later reads the table. The ring fills
    /// again from the next event.
    func releaseRecentEvents() {
        state.withLock { state in
            guard state.ringStart != nil, !state.ring.isEmpty else { return }
            state.ring = Deque()
            state.ringStart = state.position
        }
    }

    /// The events the ring holds (for tests).
    var recentEventCount: Int { state.withLock { $0.ring.count } }

    /// Takes a page the tail read: into the ring, and to every subscriber it matches.
    private func publish(_ events: [RecordedEvent], next: Checkpoint) {
        for observer in observers { observer.observe(events) }
        let items = events.map { Item(event: $0) }
        let behind = state.withLock { state in
            var behind = 0
            for item in items {
                state.ring.append(item)
                if state.ring.count > ringCapacity, let evicted = state.ring.popFirst() {
                    state.ringStart = evicted.checkpoint
                }
            }
            state.position = max(state.position, next)
            for (id, subscription) in state.subscribers {
                var delivered = false
                var open = true
                for item in items where subscription.matches(item) {
                    delivered = true
                    guard subscription.offer(.event(item)) else {
                        open = false
                        break
                    }
                }
                if open, !delivered, next > subscription.after, subscription.progressDue() {
                    open = subscription.offer(.progress(next))
                }
                if !open {
                    state.subscribers[id] = nil
                    behind += 1
                }
            }
            return behind
        }
        if behind > 0 { fellBehind(behind) }
        progress.bump()
    }

    /// What a read of the table after `checkpoint` with `filter` would answer at the tail's
    /// position, from the recent events: nil when they don't reach back to `checkpoint`, the
    /// tail has not read up to it, or the tail is not reading (it failed, or stopped).
    func page(after checkpoint: Checkpoint, filter: LogFilter, limit: Int) -> LogPage? {
        guard health.failures == 0 else { return nil }
        return state.withLock { state -> LogPage? in
            guard Self.serves(after: checkpoint, state) else { return nil }
            // The first event after `checkpoint` (the ring is in log order).
            var low = 0
            var high = state.ring.count
            while low < high {
                let middle = (low + high) / 2
                if state.ring[middle].checkpoint <= checkpoint { low = middle + 1 } else { high = middle }
            }
            var events: [RecordedEvent] = []
            var index = low
            while index < state.ring.count, events.count < limit {
                let event = state.ring[index].event
                if filter.takes(event) { events.append(event) }
                index += 1
            }
            let isFull = events.count == limit
            return LogPage(
                events: events, next: isFull ? events[events.count - 1].checkpoint : state.position, isFull: isFull,
                pendingBeyondHorizon: false)
        }
    }

    /// Whether ``page(after:filter:limit:)`` can answer after `checkpoint`.
    func serves(after checkpoint: Checkpoint) -> Bool {
        health.failures == 0 && state.withLock { Self.serves(after: checkpoint, $0) }
    }

    /// The tail reads, its recent events reach back to `checkpoint`, and it has read up to it.
    private static func serves(after checkpoint: Checkpoint, _ state: State) -> Bool {
        guard !state.isStopped, let start = state.ringStart else { return false }
        return start <= checkpoint && checkpoint <= state.position
    }

    private func fellBehind(_ count: Int) {
        overflows.add(count, ordering: .relaxed)
        logger.notice(
            "a /ws/log socket fell behind: it reads the table until it has caught up",
            metadata: ["sockets": "\(count)", "buffer": "\(bufferCapacity)"])
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.health.keepReading("the log broadcaster lost the log", logger: self.logger) {
                defer { for observer in self.observers { observer.tailInterrupted() } }
                let start = try await self.startingPoint()
                for try await page in self.store.pages(
                    from: start, notifier: self.notifier, batchSize: 1000, heartbeat: Heartbeat(.seconds(5)))
                {
                    self.publish(page.events, next: page.next)
                    self.health.succeeded()
                }
            }
        }
        let subscribers = state.withLock { state in
            state.isStopped = true
            defer { state.subscribers.removeAll() }
            return Array(state.subscribers.values)
        }
        for subscription in subscribers { subscription.continuation.finish() }
    }

    /// Where the tail (re)starts: where it stopped, or the log's head the first time.
    private func startingPoint() async throws -> Checkpoint {
        if let start = state.withLock({ state in state.ringStart.map { _ in state.position } }) { return start }
        let head = try await store.head()
        state.withLock { state in
            state.ringStart = head
            state.position = head
        }
        return head
    }
}

/// Something kept in step with the log by the broadcaster's tail (a cache that events invalidate).
protocol LogObserver: Sendable {
    /// A page the tail read: called for every page in log order, an empty one included (the
    /// tail is reading).
    func observe(_ events: [RecordedEvent])
    /// The tail stopped reading (it failed, or the server is stopping): until the next
    /// ``observe(_:)``, events go by unseen.
    func tailInterrupted()
}
