import EventStore
import Foundation
import Logging
import PostgresNIO
import Projections
import Synchronization
import Testing
import VigilTesting

/// Counts events per stream: any event applied twice, or lost, shows in the counts.
struct StreamCounts: Projection {
    struct InjectedFailure: Error {}

    let name = "stream_counts"
    let filter = LogFilter(streamPrefix: "count-")
    /// Applies that throw after writing their rows (inside the transaction), by call number.
    let failOnCalls: Set<Int>
    let calls = Counter()

    final class Counter: Sendable {
        private let value = Mutex(0)
        func next() -> Int {
            value.withLock {
                $0 += 1; return $0
            }
        }
        var count: Int { value.withLock { $0 } }
    }

    init(failOnCalls: Set<Int> = []) { self.failOnCalls = failOnCalls }

    func createTables(on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            "CREATE TABLE stream_counts (stream text PRIMARY KEY, n bigint NOT NULL)", logger: logger)
    }

    func apply(_ events: [RecordedEvent], on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO stream_counts (stream, n)
            SELECT s, count(*) FROM unnest(\(events.map(\.stream))::text[]) AS s GROUP BY s
            ON CONFLICT (stream) DO UPDATE SET n = stream_counts.n + excluded.n
            """,
            logger: logger
        )
        if failOnCalls.contains(calls.next()) { throw InjectedFailure() }
    }
}

@Suite("Projection runner")
struct ProjectionRunnerTests {
    static let fast = ProjectionRunner.Options(
        batchSize: 300, leaseRetry: .milliseconds(100), errorRetry: .milliseconds(50))

    /// Runs `runner` until `body` returns, then cancels it (for a runner: a crash between batches).
    static func running<Value: Sendable>(
        _ runner: ProjectionRunner,
        _ body: @Sendable () async throws -> Value
    ) async throws -> Value {
        try await withThrowingTaskGroup(of: Value?.self) { group in
            group.addTask {
                try await runner.run()
                return nil
            }
            defer { group.cancelAll() }
            return try await body()
        }
    }

    static func counts(_ store: EventStore) async throws -> [String: Int64] {
        var counts: [String: Int64] = [:]
        let rows = try await store.client.query("SELECT stream, n FROM stream_counts", logger: TestDatabase.logger)
        for try await (stream, n) in rows.decode((String, Int64).self) { counts[stream] = n }
        return counts
    }

    static func status(_ store: EventStore) async throws -> ProjectionStatus? {
        try await store.projectionStatuses().first { $0.name == "stream_counts" }
    }

    /// Waits until the projection has applied `count` events.
    static func waitForApplied(_ count: Int64, _ store: EventStore) async throws {
        let deadline = ContinuousClock.now + .seconds(180)
        while ContinuousClock.now < deadline {
            if let status = try await status(store), status.eventsApplied >= count { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("the projection did not apply \(count) events within 180 s")
    }

    /// Waits until the checkpoint has also moved past `last`, a trailing event the filter skips.
    static func waitForCheckpoint(_ last: Checkpoint, _ store: EventStore) async throws {
        let deadline = ContinuousClock.now + .seconds(180)
        var seen = "none"
        while ContinuousClock.now < deadline {
            let status = try await status(store)
            if let status, status.checkpoint >= last { return }
            seen = "\(status.map { "\($0.checkpoint)" } ?? "none"), last error \(status?.lastError ?? "none")"
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("the projection's checkpoint did not reach \(last) within 180 s (at \(seen))")
    }

    /// Bulk-appends `count` counted events, then one the projection skips; returns the checkpoint
    /// of that last one.
    @discardableResult
    static func appendCountedEvents(_ store: EventStore, count: Int) async throws -> Checkpoint {
        let items = (0..<count).map { (stream: "count-\($0 % 10)", event: detection(sequence: $0)) }
        _ = try await store.appendBulk(items)
        // Events of other streams are skipped by the filter but still passed by the checkpoint.
        return try await store.append(to: "other-1", events: [detection()]).checkpoints[0]
    }

    @Test("every event is applied exactly once across a failure inside a batch and a crash between batches")
    func exactlyOnce() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            try await Self.appendCountedEvents(store, count: 3000)

            // First instance: its 4th batch fails after writing its rows; the runner retries.
            // Then it "crashes" (is cancelled) after at least 1500 events.
            let failing = StreamCounts(failOnCalls: [4])
            let first = ProjectionRunner(projection: failing, store: store, notifier: notifier, options: Self.fast)
            try await Self.running(first) { try await Self.waitForApplied(1500, store) }
            #expect(failing.calls.count >= 5, "the failed batch must have been retried")

            // More events arrive while no instance runs; a new instance resumes from the checkpoint.
            try await Self.appendCountedEvents(store, count: 2000)
            let second = ProjectionRunner(
                projection: StreamCounts(), store: store, notifier: notifier, options: Self.fast)
            let last = try await Self.running(second) {
                try await Self.waitForApplied(5000, store)
                let last = try await Self.appendCountedEvents(store, count: 500)  // and live appends
                try await Self.waitForApplied(5500, store)
                try await Self.waitForCheckpoint(last, store)
                return last
            }

            let counts = try await Self.counts(store)
            #expect(counts.count == 10)
            #expect(counts.values.reduce(0, +) == 5500)
            #expect(counts.values.allSatisfy { $0 == 550 })
            let status = try #require(try await Self.status(store))
            #expect(status.eventsApplied == 5500)
            #expect(status.lastError == nil)
            #expect(status.checkpoint == last)
            #expect(status.lagEvents == 0)
            #expect(status.state == "stopped", "a stopped runner must give its lease back")
        }
    }

    @Test("status reads head and checkpoints in one snapshot, comparing transaction ids as numbers")
    func statusAcrossPowersOfTen() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            // Two events of transactions 96 and 220 (as text, "96" sorts after "220").
            let written = [
                try await store.insertEventRow(stream: "count-a", transaction: 96),
                try await store.insertEventRow(stream: "count-b", transaction: 220),
            ]
            try await store.registerProjections([StreamCounts()])
            let before = try #require(try await Self.status(store))
            #expect(before.head == written[1])
            #expect(before.lagEvents == 2)
            let runner = ProjectionRunner(
                projection: StreamCounts(), store: store, notifier: notifier, options: Self.fast)
            try await Self.running(runner) {
                try await Self.waitForApplied(2, store)
            }
            let after = try #require(try await Self.status(store))
            #expect(after.checkpoint == written[1])
            #expect(after.head == written[1])
            #expect(after.lagEvents == 0)
            #expect(try await Self.counts(store) == ["count-a": 1, "count-b": 1])
        }
    }

    @Test("one runner holds the lease; when it stops, a standby takes over from its checkpoint")
    func leaseTakeover() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            try await Self.appendCountedEvents(store, count: 1000)
            let a = ProjectionRunner(projection: StreamCounts(), store: store, notifier: notifier, options: Self.fast)
            let b = ProjectionRunner(projection: StreamCounts(), store: store, notifier: notifier, options: Self.fast)

            try await Self.running(b) {
                try await Self.running(a) {
                    try await Self.waitForApplied(1000, store)
                    // Both run; exactly one holds the lease.
                    try await Task.sleep(for: .milliseconds(300))
                    #expect(Set([a.state, b.state]) == [.live, .standby])
                    #expect(try await Self.status(store)?.state == "live")
                }
                // Whichever was live, `a` is gone now: `b` must be (or become) the live one.
                try await Self.appendCountedEvents(store, count: 1000)
                try await Self.waitForApplied(2000, store)
                #expect(b.state == .live)
            }
            let counts = try await Self.counts(store)
            #expect(counts.values.reduce(0, +) == 2000)
            #expect(counts.values.allSatisfy { $0 == 200 })
        }
    }

    @Test("a rebuild fills a new generation while the live one serves, then swaps in and equals the log")
    func rebuildWithoutDowntime() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            try await Self.appendCountedEvents(store, count: 3000)
            let runner = ProjectionRunner(
                projection: StreamCounts(), store: store, notifier: notifier, options: Self.fast)
            try await Self.running(runner) {
                try await Self.waitForApplied(3000, store)
                let generation = try await store.requestRebuild(of: StreamCounts())
                #expect(generation == 2)
                #expect(
                    try await store.requestRebuild(of: StreamCounts()) == 2, "a rebuild under way is not started twice")

                // Readers keep reading the live generation, and events keep arriving.
                for _ in 0..<5 {
                    let total = try await Self.counts(store).values.reduce(0, +)
                    #expect(total >= 3000 && total <= 4000)
                    try await Self.appendCountedEvents(store, count: 200)
                }

                let deadline = ContinuousClock.now + .seconds(180)
                while ContinuousClock.now < deadline {
                    if let status = try await Self.status(store), status.generation == 2, status.eventsApplied == 4000 {
                        break
                    }
                    try await Task.sleep(for: .milliseconds(20))
                }
                let status = try #require(try await Self.status(store))
                #expect(status.generation == 2)
                #expect(status.rebuild == nil)
                #expect(status.eventsApplied == 4000)
                #expect(status.state == "live")
            }
            let counts = try await Self.counts(store)
            #expect(counts.count == 10)
            #expect(counts.values.allSatisfy { $0 == 400 })
            let leftovers = try await store.client.query(
                """
                SELECT (SELECT count(*) FROM projection_checkpoints WHERE generation = 1)
                     + (SELECT count(*) FROM pg_namespace WHERE nspname = 'projection_stream_counts_1')
                """,
                logger: TestDatabase.logger
            ).decode(Int64.self).first { _ in true }
            #expect(leftovers == 0, "the old generation is dropped after the swap")
        }
    }
}
