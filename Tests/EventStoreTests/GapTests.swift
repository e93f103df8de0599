import EventStore
import Foundation
import PostgresNIO
import Synchronization
import Testing
import VigilTesting

/// The store's central promise: every committed event reaches every tailer exactly once, in
/// one order, and no rolled-back event ever appears, under concurrent writers that commit
/// out of position order.
@Suite("Gap-free tailing", .serialized)
struct GapTests {
    /// What the writers did, as they saw it.
    final class Ledger: Sendable {
        private let state = Mutex((committed: Set<UUID>(), rolledBack: Set<UUID>()))
        func committed(_ ids: some Sequence<UUID>) { state.withLock { $0.committed.formUnion(ids) } }
        func rolledBack(_ ids: some Sequence<UUID>) { state.withLock { $0.rolledBack.formUnion(ids) } }
        var committed: Set<UUID> { state.withLock { $0.committed } }
        var rolledBack: Set<UUID> { state.withLock { $0.rolledBack } }
    }

    struct Seen: Sendable, Equatable {
        var id: UUID
        var checkpoint: Checkpoint
        var stream: String
        var version: Int64
    }

    struct Rollback: Error {}

    static let sentinelType = "GapTestFinished"

    /// Single-event appends through the group-commit appender, 16 at a time, each sub-writer
    /// on its own stream with exact expected versions.
    static func groupWriter(_ index: Int, appender: GroupCommitAppender, ledger: Ledger, events: Int) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<16 {
                group.addTask {
                    let stream = "group-\(index)-\(lane)"
                    for version in 0..<Int64(events / 16) {
                        let event = detection(camera: stream, sequence: Int(version))
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
                ("shared-\(Int.random(in: 10..<30))", (0..<Int.random(in: 1...60)).map { detection(sequence: $0) })
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
                (stream: "bulk-\(index)-\(n % 50)", event: detection(sequence: n))
            }
            let result = try await store.appendBulk(items)
            #expect(result.appended == items.count)
            ledger.committed(items.map(\.event.id))
            written += items.count
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...20)))
        }
    }

    /// One transaction held open for seconds (holding every reader's horizon), then more
    /// transactions with delays.
    static func slowWriter(store: EventStore, ledger: Ledger, hold: Duration) async throws {
        let held = (0..<100).map { detection(sequence: $0) }
        try await store.transaction { transaction in
            try await transaction.append(to: "slow-held", events: held)
            try await Task.sleep(for: hold)
        }
        ledger.committed(held.map(\.id))
        for round in 0..<20 {
            let events = (0..<100).map { detection(sequence: $0) }
            try await store.transaction { transaction in
                try await transaction.append(to: "slow-\(round % 3)", events: events)
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...50)))
            }
            ledger.committed(events.map(\.id))
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
        try await withThrowingTaskGroup(of: [Seen]?.self) { group in
            group.addTask {
                var seen: [Seen] = []
                for try await event in store.tail(from: start, notifier: notifier, batchSize: batchSize) {
                    if event.type == sentinelType { return seen }
                    seen.append(
                        Seen(id: event.id, checkpoint: event.checkpoint, stream: event.stream, version: event.version))
                }
                return seen
            }
            group.addTask {
                try await Task.sleep(for: deadline)
                return nil
            }
            defer { group.cancelAll() }
            let first = try await group.next()!
            if let seen = first { return seen }
            Issue.record("tailer from \(start) did not reach the end within \(deadline)")
            return []
        }
    }

    @Test(
        "8 writers, 4 tailers, ≥100k events: every committed event exactly once, in one order", .timeLimit(.minutes(10))
    )
    func concurrentWritersAndTailers() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            try await GroupCommitTests.withAppender(store) { appender in
                let ledger = Ledger()
                let deadline = Duration.seconds(420)
                let clock = ContinuousClock()
                let began = clock.now

                // Tailers started before, during and after the writers, at different checkpoints.
                async let fromStart = Self.tailer(
                    store: store, notifier: notifier, from: .start, batchSize: 1000, deadline: deadline)
                async let smallPages = Self.tailer(
                    store: store, notifier: notifier, from: .start, batchSize: 50, deadline: deadline)
                async let writers: Void = withThrowingTaskGroup(of: Void.self) { group in
                    func timed(_ name: String, _ work: @escaping @Sendable () async throws -> Void) {
                        group.addTask {
                            let start = ContinuousClock.now
                            try await work()
                            print("gap test: \(name) done after \(ContinuousClock.now - start)")
                        }
                    }
                    timed("group writer 0") {
                        try await Self.groupWriter(0, appender: appender, ledger: ledger, events: 3_200)
                    }
                    timed("group writer 1") {
                        try await Self.groupWriter(1, appender: appender, ledger: ledger, events: 3_200)
                    }
                    for index in 0..<3 {
                        timed("transaction writer \(index)") {
                            try await Self.transactionWriter(store: store, ledger: ledger, events: 6_000)
                        }
                    }
                    timed("bulk writer 0") {
                        try await Self.bulkWriter(0, store: store, ledger: ledger, events: 38_000)
                    }
                    timed("bulk writer 1") {
                        try await Self.bulkWriter(1, store: store, ledger: ledger, events: 38_000)
                    }
                    timed("slow writer") { try await Self.slowWriter(store: store, ledger: ledger, hold: .seconds(4)) }
                    try await group.waitForAll()
                }
                try await Task.sleep(for: .seconds(1))
                async let lateFromStart = Self.tailer(
                    store: store, notifier: notifier, from: .start, batchSize: 500, deadline: deadline)
                try await Task.sleep(for: .seconds(1))
                // Some events readable, the writers still going: a checkpoint in the middle.
                var firstReadable = try await store.head()
                while firstReadable == .start {
                    try await Task.sleep(for: .milliseconds(50))
                    firstReadable = try await store.head()
                }
                let midway = firstReadable
                async let fromMidway = Self.tailer(
                    store: store, notifier: notifier, from: midway, batchSize: 1000, deadline: deadline)

                try await writers
                let written = clock.now - began
                try await store.append(to: "gap-test", events: [NewEvent(type: Self.sentinelType, data: "{}")])

                let reference = try await fromStart
                print("gap test: writers done after \(written), first tailer at the end after \(clock.now - began)")
                let committed = ledger.committed
                let rolledBack = ledger.rolledBack
                #expect(committed.count >= 100_000)
                #expect(!rolledBack.isEmpty, "some transactions should have rolled back")

                Self.verify(reference, against: committed, rolledBack: rolledBack, name: "Self.tailer from start")
                for (name, other) in [
                    ("small-page Self.tailer", try await smallPages), ("late Self.tailer", try await lateFromStart),
                ] {
                    Self.verify(other, against: committed, rolledBack: rolledBack, name: name)
                    #expect(other == reference, "\(name) saw a different order than the Self.tailer from start")
                }
                let suffix = Array(reference.drop { $0.checkpoint <= midway })
                let midwaySeen = try await fromMidway
                #expect(midwaySeen == suffix, "the Self.tailer from \(midway) must see exactly the events after it")
                #expect(!midwaySeen.isEmpty && midwaySeen.count < reference.count)

                // The log read page by page agrees with what the tailers saw.
                let log = try await store.readAll().filter { $0.type != Self.sentinelType }
                #expect(log.map(\.id) == reference.map(\.id))
            }
        }
    }

    /// Exactly once, nothing rolled back, strictly increasing checkpoints, and every stream's
    /// versions seen in order without holes.
    static func verify(_ seen: [Seen], against committed: Set<UUID>, rolledBack: Set<UUID>, name: String) {
        var unique = Set<UUID>()
        for (index, event) in seen.enumerated() where !unique.insert(event.id).inserted {
            Issue.record(
                "\(name): event \(event.id) delivered twice (second time at index \(index), \(event.checkpoint))")
            return
        }
        if let ghost = seen.first(where: { rolledBack.contains($0.id) }) {
            Issue.record("\(name): rolled-back event \(ghost.id) was delivered at \(ghost.checkpoint)")
        }
        let missing = committed.subtracting(unique)
        if !missing.isEmpty {
            Issue.record("\(name): \(missing.count) committed events never delivered, e.g. \(missing.first!)")
        }
        if let outOfOrder = zip(seen, seen.dropFirst()).first(where: { $0.checkpoint >= $1.checkpoint }) {
            Issue.record("\(name): \(outOfOrder.1.checkpoint) delivered after \(outOfOrder.0.checkpoint)")
        }
        var versions: [String: Int64] = [:]
        for event in seen {
            let expected = (versions[event.stream] ?? 0) + 1
            if event.version != expected {
                Issue.record("\(name): \(event.stream) version \(event.version) delivered where \(expected) was due")
                return
            }
            versions[event.stream] = event.version
        }
    }
}
