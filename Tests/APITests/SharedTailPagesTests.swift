import EventStore
import Foundation
import Logging
import Synchronization
import Testing
import VigilTesting

@testable import API

/// The projection runners' pages from the process's one tail (`SharedTailPages`): each
/// follower gets every committed event its filter takes exactly once, in log order, whether
/// it is served from the broadcaster's ring, falls off it (a small ring, a slow follower) and
/// reads the table, or starts far behind; rolled-back events never appear.
@Suite struct SharedTailPagesTests {
    /// What each follower has received so far, by name.
    final class Pages: Sendable {
        let events = Mutex([String: [RecordedEvent]]())
    }

    struct Follower: Sendable {
        var name: String
        var filter: LogFilter
        var batchSize: Int
        /// Pause after each page (a slow runner falls off the ring).
        var pause: Duration
    }

    @Test("every follower gets each committed event it takes once, in log order, ring or table")
    func followersMissNothing() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            let broadcaster = LogBroadcaster(
                store: store, notifier: notifier, logger: testLogger, ringCapacity: 64, bufferCapacity: 64)
            let source = SharedTailPages(broadcaster: broadcaster, table: TablePages(store: store, notifier: notifier))
            // Events before the broadcaster starts: a follower from the start reads them from the table.
            for index in 0..<50 {
                try await store.append(
                    to: "early-\(index % 3)", events: [NewEvent(type: "Early", data: #"{"i": \#(index)}"#)])
            }
            let followers = [
                Follower(name: "all", filter: .all, batchSize: 1000, pause: .zero),
                Follower(name: "small pages", filter: .all, batchSize: 7, pause: .zero),
                Follower(name: "odd type", filter: LogFilter(types: ["Odd"]), batchSize: 100, pause: .zero),
                Follower(name: "one stream", filter: LogFilter(streamPrefix: "s-1"), batchSize: 50, pause: .zero),
                Follower(name: "slow", filter: .all, batchSize: 20, pause: .milliseconds(30)),
            ]
            let writers = 4
            let perWriter = 150
            let expectedCommitted = 50 + writers * perWriter
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await broadcaster.run() }
                let received = Pages()
                for follower in followers {
                    group.addTask {
                        var seen: [RecordedEvent] = []
                        var last = Checkpoint.start
                        for try await page in source.pages(
                            from: .start, filter: follower.filter, batchSize: follower.batchSize,
                            heartbeat: Heartbeat(.milliseconds(200)))
                        {
                            #expect(page.events.count <= follower.batchSize)
                            #expect(page.next >= last, "\(follower.name): next went back")
                            last = page.next
                            seen += page.events
                            received.events.withLock { $0[follower.name] = seen }
                            if follower.pause > .zero { try await Task.sleep(for: follower.pause) }
                        }
                    }
                }
                // Writers: single appends and rolled-back transactions, at once.
                try await withThrowingTaskGroup(of: Void.self) { writing in
                    for writer in 0..<writers {
                        writing.addTask {
                            for index in 0..<perWriter {
                                let type = index % 2 == 0 ? "Even" : "Odd"
                                let event = NewEvent(type: type, data: #"{"w": \#(writer), "i": \#(index)}"#)
                                try await store.append(to: "s-\(writer)-\(index % 5)", events: [event])
                                if index % 10 == 0 {
                                    struct Abandon: Error {}
                                    _ = try? await store.transaction { transaction in
                                        try await transaction.append(
                                            to: "s-\(writer)-rolled", events: [NewEvent(type: "Rolled", data: "{}")])
                                        throw Abandon()
                                    }
                                }
                            }
                        }
                    }
                    try await writing.waitForAll()
                }
                let committed = try await store.readAll()
                #expect(committed.count == expectedCommitted)
                try await waitUntil("every follower has read the whole log", timeout: .seconds(120)) {
                    received.events.withLock { received in
                        followers.allSatisfy { follower in
                            received[follower.name]?.count == committed.filter { follower.filter.takes($0) }.count
                        }
                    }
                }
                for follower in followers {
                    let got = received.events.withLock { $0[follower.name] ?? [] }
                    let want = committed.filter { follower.filter.takes($0) }
                    #expect(got.map(\.id) == want.map(\.id), "\(follower.name)")
                    #expect(!got.contains { $0.type == "Rolled" }, "\(follower.name)")
                }
                group.cancelAll()
            }
        }
    }
}
