import Foundation
import PostgresNIO
import Synthetic
import Testing
import VigilTesting

@testable import EventStore

/// The stretch of the log the rebuilds share (``LogWindow``): each reader gets exactly what a
/// table read with its filter gives, from far fewer table reads.
@Suite struct LogWindowTests {
    /// `count` events of types A, B and C (in that rotation), several per transaction, on a
    /// few streams.
    private static func appendLog(_ count: Int, to store: EventStore) async throws {
        let types = ["A", "B", "C"]
        var written = 0
        while written < count {
            let batch = (0..<min(7, count - written)).map { index in
                NewEvent(type: types[(written + index) % 3], data: #"{"n":\#(written + index)}"#)
            }
            try await store.append(to: "window-\(written % 5)", events: batch)
            written += batch.count
        }
    }

    private struct Seen: Equatable, CustomStringConvertible {
        var checkpoint: Checkpoint
        var type: String
        var description: String { "\(type)@\(checkpoint.position)" }
    }

    /// Walks the log after `start` with `filter` through `window` (or the table where the window
    /// answers nil), `limit` events a page, to a page that is not full, on `connection` (or one
    /// leased for the walk), as a rebuild reads on the connection it holds.
    private static func walk(
        _ window: LogWindow, as reader: String, from start: Checkpoint = .start, filter: LogFilter, limit: Int,
        store: EventStore, on connection: PostgresConnection? = nil
    ) async throws -> (seen: [Seen], next: Checkpoint, pages: Int, fromTable: Int) {
        guard let connection else {
            return try await store.client.withConnection { connection in
                try await walk(
                    window, as: reader, from: start, filter: filter, limit: limit, store: store, on: connection)
            }
        }
        var (seen, checkpoint, pages, fromTable) = ([Seen](), start, 0, 0)
        while true {
            var page = try await window.page(
                for: reader, after: checkpoint, filter: filter, limit: limit, store: store, on: connection)
            if page == nil {
                fromTable += 1
                page = try await store.read(
                    after: checkpoint, filter: filter, limit: limit, bodies: false, on: connection)
            }
            guard let page else { break }
            pages += 1
            #expect(page.events.count <= limit)
            #expect(page.next >= checkpoint)
            seen += page.events.map { Seen(checkpoint: $0.checkpoint, type: $0.type) }
            checkpoint = page.next
            if !page.isFull { break }
        }
        return (seen, checkpoint, pages, fromTable)
    }

    /// One page from `window`, on a connection leased for it.
    private static func page(
        _ window: LogWindow, for reader: String, after checkpoint: Checkpoint = .start, filter: LogFilter = LogFilter(),
        limit: Int, store: EventStore
    ) async throws -> LogPage? {
        try await store.client.withConnection { connection in
            try await window.page(
                for: reader, after: checkpoint, filter: filter, limit: limit, store: store, on: connection)
        }
    }

    /// The table's answer: every event of `filter` after `start`.
    private static func table(
        _ filter: LogFilter, after start: Checkpoint = .start, store: EventStore
    ) async throws
        -> [Seen]
    {
        let page = try await store.read(after: start, filter: filter, limit: 100_000, bodies: false)
        return page.events.map { Seen(checkpoint: $0.checkpoint, type: $0.type) }
    }

    @Test func readersWithTheirOwnFiltersGetWhatTheTableGivesFromFewerReads() async throws {
        try await TestDatabase.withStore { store in
            try await Self.appendLog(900, to: store)
            let window = LogWindow(stretchSize: 50, capacity: 10_000)
            let filters = [
                LogFilter(types: ["A"]), LogFilter(types: ["B", "C"]), LogFilter(types: ["C"]),
                LogFilter(types: ["Z"]), LogFilter(),
            ]
            let walks = try await withThrowingTaskGroup(of: (Int, [Seen], Int, Int).self) { group in
                for (index, filter) in filters.enumerated() {
                    group.addTask {
                        let walk = try await Self.walk(window, as: "r\(index)", filter: filter, limit: 40, store: store)
                        return (index, walk.seen, walk.pages, walk.fromTable)
                    }
                }
                return try await group.reduce(into: [Int: ([Seen], Int, Int)]()) { $0[$1.0] = ($1.1, $1.2, $1.3) }
            }
            var pages = 0
            for (index, filter) in filters.enumerated() {
                let expected = try await Self.table(filter, store: store)
                #expect(walks[index]?.0 == expected, "reader \(index), \(filter)")
                #expect(walks[index]?.2 == 0, "reader \(index) read the table itself")
                pages += walks[index]?.1 ?? 0
            }
            #expect(try await Self.table(LogFilter(), store: store).count == 900)
            // 900 events in stretches of 50 is 18 reads, and a few at the head; the readers got
            // 900/40 + 300/40 + 600/40 + 300/40 + 1 pages, and more.
            let reads = await window.tableReads
            #expect(reads <= 18 + filters.count + 1, "table reads \(reads)")
            #expect(reads < pages / 2, "table reads \(reads) for \(pages) pages")
        }
    }

    /// The window reads on the connections its readers hold: readers holding every connection
    /// of their pool still get their pages. (A read that asked the pool for one more would wait
    /// for ever: every holder waits for it. PostgresNIO's pool can leave a request waiting for a
    /// release below its limit too, see ``EventStore/readShared(as:after:filter:limit:on:)``.)
    @Test func theWindowReadsOnTheConnectionsItsReadersHold() async throws {
        var settings = try TestDatabase.settings()
        settings.maximumConnections = 3
        try await ScratchDatabase.with(settings: settings, prefix: "vigil_test", logger: TestDatabase.logger) {
            client, _ in
            let store = EventStore(client: client, logger: TestDatabase.logger)
            try await Self.appendLog(300, to: store)
            let window = LogWindow(stretchSize: 50, capacity: 10_000)
            let filters = [LogFilter(types: ["A"]), LogFilter(types: ["B", "C"]), LogFilter()]
            let holding = Tally()
            let outcome = await withDeadline(.seconds(60)) {
                try await withThrowingTaskGroup(of: (Int, [Seen]).self) { group in
                    for (index, filter) in filters.enumerated() {
                        group.addTask {
                            try await store.client.withConnection { connection in
                                await holding.add()
                                try await waitUntil("every reader holds a connection", timeout: .seconds(30)) {
                                    await holding.value == filters.count
                                }
                                let walk = try await Self.walk(
                                    window, as: "r\(index)", filter: filter, limit: 20, store: store, on: connection)
                                return (index, walk.seen)
                            }
                        }
                    }
                    return try await group.reduce(into: [Int: [Seen]]()) { $0[$1.0] = $1.1 }
                }
            }
            let walks = try #require(outcome, "the readers got no page within 60 s").get()
            for (index, filter) in filters.enumerated() {
                #expect(walks[index] == (try await Self.table(filter, store: store)), "reader \(index)")
            }
            #expect(await window.tableReads >= 300 / 50)
        }
    }

    /// A page that is not full ends at the head as a table read that started after it was asked
    /// for found it: events appended after an earlier walk reached the head are read.
    @Test func aWalkAtTheHeadSeesWhatWasAppendedSince() async throws {
        try await TestDatabase.withStore { store in
            try await Self.appendLog(120, to: store)
            let window = LogWindow(stretchSize: 50, capacity: 10_000)
            let first = try await Self.walk(window, as: "r", filter: LogFilter(types: ["B"]), limit: 30, store: store)
            #expect(first.seen.count == 40)
            try await Self.appendLog(30, to: store)
            let second = try await Self.walk(
                window, as: "r", from: first.next, filter: LogFilter(types: ["B"]), limit: 30, store: store)
            #expect(second.seen == (try await Self.table(LogFilter(types: ["B"]), after: first.next, store: store)))
            #expect(second.seen.count == 10)
            #expect(second.fromTable == 0)
        }
    }

    /// A window that holds its capacity serves no further: a reader at its end that waited for
    /// room in vain reads the table itself, and a reader behind it too.
    @Test func aFullWindowLeavesTheReaderAtItsEndToTheTable() async throws {
        try await TestDatabase.withStore { store in
            try await Self.appendLog(300, to: store)
            let window = LogWindow(stretchSize: 50, capacity: 100, roomWait: .milliseconds(50))
            // A reader that stays at the start keeps the window's first stretches.
            _ = try await Self.page(window, for: "slow", filter: LogFilter(types: ["A"]), limit: 1, store: store)
            let fast = try await Self.walk(window, as: "fast", filter: LogFilter(types: ["Z"]), limit: 40, store: store)
            #expect(fast.seen.isEmpty)
            #expect(fast.fromTable == 1, "the rest of the log from the table")
            #expect(await window.heldEvents == 100)
            let all = try await Self.walk(window, as: "slow", filter: LogFilter(), limit: 1000, store: store)
            #expect(all.seen == (try await Self.table(LogFilter(), store: store)))
            #expect(all.fromTable == 0)
            // A reader behind the window (slow keeps its end) reads the table.
            #expect(try await Self.page(window, for: "late", limit: 10, store: store) == nil)
        }
    }

    /// A reader at the end of a full window waits for the readers behind it to let a stretch
    /// go, and goes on at their pace: the log is read once, not again by the fast reader.
    @Test func aReaderAtTheEndOfAFullWindowGoesOnAtThePaceOfTheOnesBehind() async throws {
        try await TestDatabase.withStore { store in
            try await Self.appendLog(300, to: store)
            let window = LogWindow(stretchSize: 50, capacity: 100, roomWait: .seconds(60))
            _ = try await Self.page(window, for: "slow", filter: LogFilter(types: ["A"]), limit: 1, store: store)
            async let fast = Self.walk(window, as: "fast", filter: LogFilter(types: ["Z"]), limit: 40, store: store)
            try await waitUntil("the fast reader fills the window", timeout: .seconds(30)) {
                await window.heldEvents == 100
            }
            let slow = try await Self.walk(window, as: "slow", filter: LogFilter(types: ["A"]), limit: 10, store: store)
            #expect(slow.seen == (try await Self.table(LogFilter(types: ["A"]), store: store)))
            let done = try await fast
            #expect(done.seen.isEmpty && done.fromTable == 0, "fast read the table \(done.fromTable) times")
            #expect(slow.fromTable == 0)
            let reads = await window.tableReads
            #expect(reads <= 300 / 50 + 3, "table reads \(reads)")
        }
    }

    /// A reader that has asked nothing for the timeout (its runner stopped) keeps nothing in
    /// the window: the next reader starts it again where it is.
    @Test func aReaderThatStoppedAskingKeepsNothing() async throws {
        try await TestDatabase.withStore { store in
            try await Self.appendLog(300, to: store)
            let window = LogWindow(stretchSize: 50, capacity: 10_000, readerTimeout: .milliseconds(200))
            let gone = try await Self.walk(window, as: "gone", filter: LogFilter(types: ["B"]), limit: 40, store: store)
            #expect(gone.seen.count == 100)
            try await Task.sleep(for: .milliseconds(300))
            let page = try await Self.page(window, for: "late", limit: 10, store: store)
            #expect(
                page?.events.map(\.checkpoint)
                    == (try await Self.table(LogFilter(), store: store)).prefix(10).map(\.checkpoint))
            #expect(await window.heldEvents == 50, "one stretch, from the start")
        }
    }

    /// The window holds nothing once its last reader has left (a rebuild that is done gives
    /// its memory back at once, not at the next rebuild).
    @Test func theWindowLetsGoWhenItsLastReaderLeaves() async throws {
        try await TestDatabase.withStore { store in
            try await Self.appendLog(200, to: store)
            let window = LogWindow(stretchSize: 50, capacity: 10_000)
            // b stays at the start (it keeps the window's first stretch), a reads on to the end.
            let b = try await Self.page(window, for: "b", filter: LogFilter(types: ["B"]), limit: 10, store: store)
            #expect(b?.events.count == 10)
            let a = try await Self.walk(window, as: "a", filter: LogFilter(types: ["A"]), limit: 20, store: store)
            #expect(a.seen.count == 67)
            #expect(await window.heldEvents == 200)
            await window.leave("b")
            let held = await window.heldEvents
            // a last asked after its 60th event (the log's 178th): the stretch (150, 200] stays.
            #expect(held == 50, "what is before a's last page is let go: \(held) held")
            await window.leave("a")
            #expect(await window.heldEvents == 0)
        }
    }
}
