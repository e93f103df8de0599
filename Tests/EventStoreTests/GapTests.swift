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
        var type: String

        init(_ event: RecordedEvent) {
            (id, checkpoint, stream, version, type) = (
                event.id, event.checkpoint, event.stream, event.version, event.type
            )
        }
    }

    /// The tail `body` reads, or an issue and nothing if it hasn't reached the end by `deadline`.
    static func untilDeadline(
        _ deadline: Duration, _ name: String, _ body: @escaping @Sendable () async throws -> [Seen]
    ) async throws -> [Seen] {
        try await withThrowingTaskGroup(of: [Seen]?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: deadline)
                return nil
            }
            defer { group.cancelAll() }
            let first = try await group.next()!
            if let seen = first { return seen }
            Issue.record("\(name) did not reach the end within \(deadline)")
            return []
        }
    }

    /// What a held-open transaction in the middle of the run saw of the others.
    final class Hold: Sendable {
        private let state = Mutex((committedAtStart: 0, committedAtEnd: 0))
        func started(_ committed: Int) { state.withLock { $0.committedAtStart = committed } }
        func ended(_ committed: Int) { state.withLock { $0.committedAtEnd = committed } }
        var committedAtStart: Int { state.withLock { $0.committedAtStart } }
        var committedAtEnd: Int { state.withLock { $0.committedAtEnd } }
        var isOver: Bool { committedAtEnd > 0 }
    }

    struct Rollback: Error {}

    static let sentinelType = "GapTestFinished"
    /// The writers' event types, for the tailers filtered by type.
    static let types = ["GapA", "GapB", "GapC"]

    /// A detection-shaped event of type `type`.
    static func event(_ type: String, sequence: Int = 0, camera: String = "front_door") -> NewEvent {
        var event = detection(camera: camera, sequence: sequence)
        event.type = type
        return event
    }

    /// The filtered tails, as projections follow the log (``EventStore/pages(from:filter:notifier:batchSize:idlePoll:heartbeat:)``
    /// with a `types` or `stream_prefix` filter, or both). Each one's sentinel matches its filter.
    static let filters: [(name: String, filter: LogFilter, batchSize: Int)] = [
        ("types GapA, GapC", LogFilter(types: ["GapA", "GapC", sentinelType]), 1000),
        ("stream prefix shared-1", LogFilter(streamPrefix: "shared-1"), 500),
        ("type GapB on streams bulk-", LogFilter(types: ["GapB", sentinelType], streamPrefix: "bulk-"), 1000),
    ]

    /// The sentinels' streams: one per filter (`gap-test` ends the unfiltered tails).
    static let sentinelStreams = ["gap-test", "shared-1-end", "bulk-end"]

    static func matches(_ filter: LogFilter, _ seen: Seen) -> Bool {
        (filter.types.map { $0.contains(seen.type) } ?? true)
            && (filter.streamPrefix.map { seen.stream.hasPrefix($0) } ?? true)
    }

    @Test(
        "9 writers, 5 tailers and 3 filtered ones, ≥100k events: every committed event exactly once, in one order",
        .timeLimit(.minutes(10))
    )
    func concurrentWritersAndTailers() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            try await GroupCommitTests.withAppender(store) { appender in
                let ledger = Ledger()
                let hold = Hold()
                let deadline = Duration.seconds(420)
                let clock = ContinuousClock()
                let began = clock.now

                // Tailers started before, during and after the writers, at different checkpoints.
                async let fromStart = Self.tailer(
                    store: store, notifier: notifier, from: .start, batchSize: 1000, deadline: deadline)
                async let smallPages = Self.tailer(
                    store: store, notifier: notifier, from: .start, batchSize: 50, deadline: deadline)
                // Filtered ones, following pages as projection runners do.
                async let filtered = withThrowingTaskGroup(of: (Int, [Seen]).self) { group in
                    for (index, tail) in Self.filters.enumerated() {
                        group.addTask {
                            let seen = try await Self.filteredTailer(
                                store: store, notifier: notifier, filter: tail.filter, batchSize: tail.batchSize,
                                deadline: deadline, name: tail.name)
                            return (index, seen)
                        }
                    }
                    return try await group.reduce(into: [Int: [Seen]]()) { $0[$1.0] = $1.1 }
                }
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
                    timed("slow writer") {
                        try await Self.slowWriter(store: store, ledger: ledger, hold: .seconds(4), midRun: hold)
                    }
                    // A second held transaction, once about a quarter of the events are in.
                    timed("mid-run hold") {
                        try await Self.midRunHold(
                            store: store, ledger: ledger, after: 25_000, hold: .seconds(3), record: hold)
                    }
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
                // And one started when every writer is done.
                async let afterWriters = Self.tailer(
                    store: store, notifier: notifier, from: .start, batchSize: 2000, deadline: deadline)
                try await store.transaction { transaction in
                    for stream in Self.sentinelStreams.sorted() {
                        try await transaction.append(
                            to: stream, events: [NewEvent(type: Self.sentinelType, data: "{}")])
                    }
                }

                let reference = try await fromStart
                print("gap test: writers done after \(written), first tailer at the end after \(clock.now - began)")
                let committed = ledger.committed
                let rolledBack = ledger.rolledBack
                #expect(committed.count >= 100_000)
                #expect(!rolledBack.isEmpty, "some transactions should have rolled back")
                // The mid-run hold began and ended with the other writers under way.
                #expect(hold.committedAtStart >= 25_000)
                #expect(
                    hold.committedAtEnd > hold.committedAtStart && hold.committedAtEnd < committed.count,
                    "the hold must end before the other writers do")

                Self.verify(reference, against: committed, rolledBack: rolledBack, name: "tailer from start")
                for (name, other) in [
                    ("small-page tailer", try await smallPages), ("late tailer", try await lateFromStart),
                    ("tailer started after the writers", try await afterWriters),
                ] {
                    Self.verify(other, against: committed, rolledBack: rolledBack, name: name)
                    #expect(other == reference, "\(name) saw a different order than the tailer from start")
                }
                let suffix = Array(reference.drop { $0.checkpoint <= midway })
                let midwaySeen = try await fromMidway
                #expect(midwaySeen == suffix, "the tailer from \(midway) must see exactly the events after it")
                #expect(!midwaySeen.isEmpty && midwaySeen.count < reference.count)

                // Each filtered tail sees exactly the reference's events that match its filter.
                let filteredSeen = try await filtered
                for (index, tail) in Self.filters.enumerated() {
                    let expected = reference.filter { Self.matches(tail.filter, $0) }
                    let seen = filteredSeen[index] ?? []
                    #expect(!expected.isEmpty && expected.count < reference.count, "\(tail.name)")
                    #expect(seen.count == expected.count, "\(tail.name)")
                    #expect(seen == expected, "\(tail.name) saw other events than the filtered reference")
                }

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
        let unknown = unique.subtracting(committed)
        if !unknown.isEmpty {
            Issue.record("\(name): \(unknown.count) events delivered that no writer committed, e.g. \(unknown.first!)")
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
