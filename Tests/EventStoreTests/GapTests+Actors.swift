import EventStore
import Foundation
import PostgresNIO
import Synchronization
import Testing
import VigilTesting

/// The writers and tailers the gap test runs side by side.
extension GapTests {
    /// Single-event appends through the group-commit appender, 16 at a time, each sub-writer
    /// on its own stream with exact expected versions.
    static func groupWriter(_ index: Int, appender: GroupCommitAppender, ledger: Ledger, events: Int) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<16 {
                group.addTask {
                    let stream = "group-\(index)-\(lane)"
                    for version in 0..<Int64(events / 16) {
                        let event = Self.event(types[lane % 2], sequence: Int(version), camera: stream)
                        try await appender.append(to: stream, events: [event], expected: .exact(version))
                        ledger.committed([event.id])
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Transactions of 1–3 appends (1–60 events each) to shared streams, with random delays
    /// inside the transaction; one in ten rolls back.
    static func transactionWriter(store: EventStore, ledger: Ledger, events target: Int) async throws {
        var written = 0
        while written < target {
            // Streams in name order, as the store's documentation asks of multi-stream transactions
            // (opposite orders can deadlock; PostgreSQL then aborts one, handled below anyway).
            let appends = (0..<Int.random(in: 1...3)).map { _ in
                (
                    "shared-\(Int.random(in: 10..<30))",
                    (0..<Int.random(in: 1...60)).map { Self.event(types.randomElement()!, sequence: $0) }
                )
            }.sorted { $0.0 < $1.0 }
            let ids = appends.flatMap { $0.1.map(\.id) }
            let rollsBack = Int.random(in: 0..<10) == 0
            do {
                try await store.transaction { transaction in
                    for (stream, events) in appends {
                        try await transaction.append(to: stream, events: events)
                        try await Task.sleep(for: .microseconds(Int.random(in: 0...3000)))
                    }
                    if rollsBack { throw Rollback() }
                }
                ledger.committed(ids)
                written += ids.count
            } catch is Rollback {
                ledger.rolledBack(ids)
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "40P01" {
                // Two transactions appending to the same streams in opposite orders: PostgreSQL
                // aborts one of them, which then must leave no trace either.
                ledger.rolledBack(ids)
            } catch {
                Issue.record("transaction writer failed: \(String(reflecting: error))")
                throw error
            }
        }
    }

    /// COPY batches of 500–2000 events.
    static func bulkWriter(_ index: Int, store: EventStore, ledger: Ledger, events target: Int) async throws {
        var written = 0
        while written < target {
            let items = (0..<Int.random(in: 500...2000)).map { n in
                (stream: "bulk-\(index)-\(n % 50)", event: Self.event(types[n % 3], sequence: n))
            }
            let result = try await store.appendBulk(items)
            #expect(result.appended == items.count)
            ledger.committed(items.map(\.event.id))
            written += items.count
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...20)))
        }
    }

    /// One transaction held open for seconds (holding every reader's horizon), then more
    /// transactions with delays: at least 20, and on until a few after the mid-run hold is over
    /// (so that one ends while writers still write).
    static func slowWriter(store: EventStore, ledger: Ledger, hold: Duration, midRun: Hold) async throws {
        let held = (0..<100).map { Self.event("GapC", sequence: $0) }
        try await store.transaction { transaction in
            try await transaction.append(to: "slow-held", events: held)
            try await Task.sleep(for: hold)
        }
        ledger.committed(held.map(\.id))
        var round = 0
        var roundsAfterHold = 0
        while round < 20 || roundsAfterHold < 3 {
            let events = (0..<100).map { Self.event(types[round % 3], sequence: $0) }
            let stream = "slow-\(round % 3)"
            try await store.transaction { transaction in
                try await transaction.append(to: stream, events: events)
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...50)))
            }
            ledger.committed(events.map(\.id))
            if midRun.isOver { roundsAfterHold += 1 }
            round += 1
        }
    }

    /// Waits until `after` events are committed, then holds a transaction open for `hold` (the
    /// horizon of every reader with it) while the other writers go on.
    static func midRunHold(
        store: EventStore, ledger: Ledger, after: Int, hold duration: Duration, record: Hold
    ) async throws {
        while ledger.committed.count < after { try await Task.sleep(for: .milliseconds(20)) }
        let held = (0..<100).map { Self.event(types[$0 % 3], sequence: $0) }
        try await store.transaction { transaction in
            try await transaction.append(to: "shared-1-held", events: held)
            record.started(ledger.committed.count)
            try await Task.sleep(for: duration)
        }
        ledger.committed(held.map(\.id))
        record.ended(ledger.committed.count)
    }

    /// Follows the log with `filter` page by page, as a projection runner does, until the
    /// sentinel or the deadline. Checks every page: its events come after the previous page's
    /// `next`, in order, and its `next` never goes back nor falls behind its events.
    static func filteredTailer(
        store: EventStore,
        notifier: LogNotifier,
        filter: LogFilter,
        batchSize: Int,
        deadline: Duration,
        name: String
    ) async throws -> [Seen] {
        try await untilDeadline(deadline, name) {
            var seen: [Seen] = []
            var previous = Checkpoint.start
            let pages = store.pages(from: .start, filter: filter, notifier: notifier, batchSize: batchSize)
            for try await page in pages {
                if let first = page.events.first, first.checkpoint <= previous {
                    Issue.record("\(name): page starts at \(first.checkpoint), not after \(previous)")
                }
                if let last = page.events.last, page.next < last.checkpoint {
                    Issue.record("\(name): page next \(page.next) before its last event \(last.checkpoint)")
                }
                if page.next < previous { Issue.record("\(name): next went back from \(previous) to \(page.next)") }
                previous = page.next
                for event in page.events {
                    if event.type == sentinelType { return seen }
                    seen.append(Seen(event))
                }
            }
            return seen
        }
    }

    /// Reads the tail until the sentinel or the deadline, whichever comes first.
    static func tailer(
        store: EventStore,
        notifier: LogNotifier,
        from start: Checkpoint,
        batchSize: Int,
        deadline: Duration
    ) async throws -> [Seen] {
        try await untilDeadline(deadline, "tailer from \(start)") {
            var seen: [Seen] = []
            for try await event in store.tail(from: start, notifier: notifier, batchSize: batchSize) {
                if event.type == sentinelType { return seen }
                seen.append(Seen(event))
            }
            return seen
        }
    }
}
