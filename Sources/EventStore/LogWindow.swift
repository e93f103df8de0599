import Foundation
import PostgresNIO

/// A stretch of the log read once, without bodies and unfiltered, that every reader in the
/// process pages through with its own filter (``EventStore/readShared(as:after:filter:limit:on:)``):
/// the projection rebuilds, which all walk the whole log at once. Twelve read models rebuilding
/// from 1M events read ~1M index entries once, instead of twelve times, each with its own type
/// filter fetching every row to test its type.
///
/// The window grows at its end when a reader reaches it (one read at a time, which every
/// reader waiting for it shares) and drops its oldest stretches once no reader is in them.
/// When it holds ``capacity`` events, a reader at its end waits for room (up to
/// ``roomWait``). Readers outside it (behind its start, or past its end after that wait) read
/// the table themselves. Every stretch was read below the read horizon, so no
/// event can join it later: a page from the window is what a table read would answer.
actor LogWindow {
    /// Unfiltered events per read of the table.
    let stretchSize: Int
    /// Events held at most (about 26 bytes each).
    let capacity: Int
    /// A reader that has not asked for this long no longer keeps its stretch in the window.
    let readerTimeout: Duration
    /// How long a reader at the end of a full window waits for room before it reads the table.
    let roomWait: Duration

    /// One read of the table: every event in `(after, through]`, in log order.
    struct Stretch {
        let through: Checkpoint
        var transactions: [UInt64] = []
        var positions: [Int64] = []
        var types: [UInt16] = []
        var recordedAt: [Double] = []

        var count: Int { positions.count }
        func checkpoint(_ index: Int) -> Checkpoint {
            Checkpoint(transactionID: transactions[index], position: positions[index])
        }

        /// The first index whose event is after `checkpoint`.
        func firstIndex(after checkpoint: Checkpoint) -> Int {
            var (low, high) = (0, count)
            while low < high {
                let middle = (low + high) / 2
                if self.checkpoint(middle) <= checkpoint { low = middle + 1 } else { high = middle }
            }
            return low
        }
    }

    private var stretches: [Stretch] = []
    /// Where the window starts (nil: empty); its end is the last stretch's `through`, or this.
    private var origin: Checkpoint?
    private var held = 0
    /// The last read reached the head of the log (it was not full): what it said, and when it
    /// started (the head is fresh for a reader that asked before that).
    private var head: (checkpoint: Checkpoint, pendingBeyondHorizon: Bool, readAt: ContinuousClock.Instant)?
    private var growing: Task<Void, any Error>?
    private var typeNames: [String] = []
    private var typeIndex: [String: UInt16] = [:]
    private var readers: [String: (checkpoint: Checkpoint, seen: ContinuousClock.Instant)] = [:]

    init(
        stretchSize: Int = 20_000, capacity: Int = 600_000, readerTimeout: Duration = .seconds(30),
        roomWait: Duration = .seconds(2)
    ) {
        self.stretchSize = stretchSize
        self.capacity = capacity
        self.readerTimeout = readerTimeout
        self.roomWait = roomWait
    }

    private var end: Checkpoint? { stretches.last?.through ?? origin }

    /// Events held now, and the table reads made so far (for tests).
    var heldEvents: Int { held }
    private(set) var tableReads = 0

    /// The page `reader` reads after `checkpoint`, or nil when the window can't serve it (the
    /// checkpoint is outside the window, or the filter names streams): read the table then.
    ///
    /// Its events carry their checkpoint, type and recording time only. A page can hold fewer
    /// than `limit` events and still be ``LogPage/isFull``: it ends where the window ends, and
    /// more may follow. A page that is not full ends at the head of the log as a read that
    /// started after this call found it.
    func page(
        for reader: String, after checkpoint: Checkpoint, filter: LogFilter, limit: Int, store: EventStore,
        on connection: PostgresConnection
    ) async throws -> LogPage? {
        guard filter.streamPrefix == nil else { return nil }
        let limit = max(1, limit)
        let asked = ContinuousClock.now
        readers[reader] = (checkpoint, asked)
        dropUnread(now: asked)
        if origin == nil {
            origin = checkpoint
            head = nil
        }
        let wanted = wantedTypes(filter)
        var events: [RecordedEvent] = []
        var from = checkpoint
        while true {
            guard let origin, let end, checkpoint >= origin, from <= end else { return outside(reader) }
            collect(after: from, wanted: wanted, limit: limit, into: &events)
            if events.count == limit {
                return LogPage(
                    events: events, next: events[limit - 1].checkpoint, isFull: true, pendingBeyondHorizon: false)
            }
            from = end
            if let head, head.checkpoint == end, head.readAt >= asked, growing == nil {
                return LogPage(
                    events: events, next: end, isFull: false, pendingBeyondHorizon: head.pendingBeyondHorizon)
            }
            if let growing {
                try await growing.value
                continue
            }
            guard held < capacity else {
                // Full: a reader with events gets them first. One at the end waits for the
                // readers behind to let a stretch go (so the fast ones go at the pace of the
                // slowest, which sets the rebuild's time anyway, instead of each reading the
                // table again), and reads the table itself only when that takes too long.
                if !events.isEmpty || checkpoint != end {
                    return LogPage(events: events, next: end, isFull: true, pendingBeyondHorizon: false)
                }
                guard ContinuousClock.now - asked < roomWait else { return outside(reader) }
                try await Task.sleep(for: .milliseconds(10))
                dropUnread(now: .now)
                continue
            }
            // On the asking reader's connection: it waits here until the read is done, even
            // when cancelled (a task's value is awaited to the end), so the connection outlives it.
            let task = Task { try await self.grow(after: end, store: store, on: connection) }
            growing = task
            try await task.value
        }
    }

    /// Reads the stretch after `end` and appends it.
    private func grow(after end: Checkpoint, store: EventStore, on connection: PostgresConnection) async throws {
        defer { growing = nil }
        let started = ContinuousClock.now
        tableReads += 1
        let page = try await store.read(after: end, filter: .all, limit: stretchSize, bodies: false, on: connection)
        guard self.end == end else { return }  // emptied meanwhile
        head = page.isFull ? nil : (page.next, page.pendingBeyondHorizon, started)
        guard page.next > end else { return }
        var stretch = Stretch(through: page.next)
        stretch.transactions.reserveCapacity(page.events.count)
        stretch.positions.reserveCapacity(page.events.count)
        stretch.types.reserveCapacity(page.events.count)
        stretch.recordedAt.reserveCapacity(page.events.count)
        for event in page.events {
            stretch.transactions.append(event.checkpoint.transactionID)
            stretch.positions.append(event.position)
            stretch.types.append(typeNumber(event.type))
            stretch.recordedAt.append(event.recordedAt.timeIntervalSinceReferenceDate)
        }
        held += stretch.count
        stretches.append(stretch)
    }

    private func collect(after checkpoint: Checkpoint, wanted: [Bool]?, limit: Int, into events: inout [RecordedEvent])
    {
        var index = stretches.firstIndex { $0.through > checkpoint } ?? stretches.endIndex
        while index < stretches.endIndex && events.count < limit {
            let stretch = stretches[index]
            var at = stretch.firstIndex(after: checkpoint)
            while at < stretch.count && events.count < limit {
                let type = Int(stretch.types[at])
                if wanted.map({ type < $0.count && $0[type] }) ?? true {
                    events.append(
                        RecordedEvent(
                            checkpoint: stretch.checkpoint(at), id: Self.noID, stream: "", version: 0,
                            type: typeNames[type], schemaVersion: 0, data: "", metadata: "",
                            recordedAt: Date(timeIntervalSinceReferenceDate: stretch.recordedAt[at])))
                }
                at += 1
            }
            index += 1
        }
    }

    /// `reader` reads the table this time: its place keeps nothing in the window until it
    /// asks again.
    private func outside(_ reader: String) -> LogPage? {
        readers[reader] = nil
        return nil
    }

    /// `reader` reads no more (its rebuild is done, or failed): its place no longer keeps a
    /// stretch, and the window lets go of what no one else reads.
    func leave(_ reader: String) {
        readers[reader] = nil
        dropUnread(now: .now)
    }

    /// Drops the stretches no reader is in any more (all of them when none is left).
    private func dropUnread(now: ContinuousClock.Instant) {
        readers = readers.filter { now - $0.value.seen < readerTimeout }
        guard let origin, let end else { return }
        let inside = readers.values.map(\.checkpoint).filter { $0 >= origin && $0 <= end }
        guard let lowest = inside.min() else {
            guard growing == nil else { return }
            stretches.removeAll()
            self.origin = nil
            held = 0
            head = nil
            return
        }
        let gone = stretches.prefix { $0.through <= lowest }.count
        guard gone > 0 else { return }
        held -= stretches[..<gone].reduce(0) { $0 + $1.count }
        self.origin = stretches[gone - 1].through
        stretches.removeFirst(gone)
    }

    private func wantedTypes(_ filter: LogFilter) -> [Bool]? {
        guard let numbers = filter.types?.map(typeNumber) else { return nil }
        var wanted = Array(repeating: false, count: typeNames.count)
        for number in numbers { wanted[Int(number)] = true }
        return wanted
    }

    private func typeNumber(_ type: String) -> UInt16 {
        if let number = typeIndex[type] { return number }
        let number = UInt16(typeNames.count)
        typeNames.append(type)
        typeIndex[type] = number
        return number
    }

    static let noID = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
}
