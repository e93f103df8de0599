import EventStore
import Foundation
import Logging
import PostgresNIO
import Projections
import Synthetic
import Testing
import VigilTesting

/// Exactly-once application where it is hardest: at `COMMIT`. A batch whose `COMMIT` fails, or
/// whose connection dies during it, leaves nothing; one whose `COMMIT` succeeded but whose
/// answer was lost is not applied again; and a runner whose checkpoint was moved under it
/// refuses to commit its batch (`ProjectionError.checkpointMoved`).
@Suite("Exactly once at COMMIT")
struct ExactlyOnceTests {
    typealias Runner = ProjectionRunnerTests

    /// The stream counts' rows of generation `generation`, by stream.
    static func counts(generation: Int32, _ store: EventStore) async throws -> [String: Int64] {
        var counts: [String: Int64] = [:]
        let rows = try await store.client.query(
            "SELECT stream, n FROM \(unescaped: StreamCounts().schema(generation: generation)).stream_counts",
            logger: TestDatabase.logger)
        for try await (stream, n) in rows.decode((String, Int64).self) { counts[stream] = n }
        return counts
    }

    /// Expects every one of the 10 streams counted `each` times, the checkpoint at `last`, the
    /// events applied `10 × each`; then rebuilds the read model (with `rebuilt`, a fresh
    /// instance of the projection: the same faults hit the rebuild) and expects the rebuild to
    /// hold the same rows.
    static func expectExactlyOnceAndEqualToRebuild(
        _ store: EventStore, _ notifier: LogNotifier, each: Int64, last: Checkpoint, rebuilt: StreamCounts,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let status = try #require(try await Runner.status(store), sourceLocation: sourceLocation)
        let live = try await counts(generation: status.generation, store)
        #expect(live.count == 10, sourceLocation: sourceLocation)
        #expect(live.values.allSatisfy { $0 == each }, "\(live)", sourceLocation: sourceLocation)
        #expect(status.eventsApplied == 10 * each, sourceLocation: sourceLocation)
        #expect(status.checkpoint == last, sourceLocation: sourceLocation)

        let runner = ProjectionRunner(projection: rebuilt, store: store, notifier: notifier, options: Runner.fast)
        try await Runner.running(runner) {
            let generation = try await store.requestRebuild(of: rebuilt)
            #expect(generation == status.generation + 1, sourceLocation: sourceLocation)
            try await Runner.waitUntil("the rebuild is swapped in") {
                try await Runner.status(store)?.generation == generation
            }
        }
        let after = try #require(try await Runner.status(store), sourceLocation: sourceLocation)
        #expect(try await counts(generation: after.generation, store) == live, sourceLocation: sourceLocation)
        #expect(after.eventsApplied == status.eventsApplied, sourceLocation: sourceLocation)
        #expect(after.checkpoint == last, sourceLocation: sourceLocation)
    }

    @Test(
        "a batch whose COMMIT fails, or whose connection dies during COMMIT, leaves nothing and is applied once",
        arguments: StreamCounts.CommitFault.allCases)
    func failureAtCommit(_ fault: StreamCounts.CommitFault) async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            let last = try await Runner.appendCountedEvents(store, count: 3000)
            // Each batch of 300 writes the 10 streams' rows: firing 35 is in the 4th batch's.
            let counts = StreamCounts(commitFault: (35, fault))
            let runner = ProjectionRunner(projection: counts, store: store, notifier: notifier, options: Runner.fast)
            try await Runner.running(runner) {
                try await Runner.waitForApplied(3000, store)
                try await Runner.waitForCheckpoint(last, store)
            }
            // The fault fired (the sequence passed it), and its batch was given to apply again.
            let checks = try await store.client.query(
                "SELECT last_value FROM projection_stream_counts_1.commit_checks", logger: TestDatabase.logger
            ).decode(Int64.self).first { _ in true }
            #expect((checks ?? 0) > 35)
            #expect(counts.calls.allEvents > 3000, "the batch whose COMMIT failed was not given to apply again")
            try await Self.expectExactlyOnceAndEqualToRebuild(
                store, notifier, each: 300, last: last, rebuilt: StreamCounts(commitFault: (35, fault)))
        }
    }

    @Test("a batch whose COMMIT succeeded but whose answer was lost is not applied again")
    func lostCommitAcknowledgement() async throws {
        let settings = try TestDatabase.settings()
        let proxy = try await CommitAckDropper.start(to: settings.host, port: settings.port)
        do {
            try await ScratchDatabase.with(settings: settings, prefix: "vigil_test", logger: TestDatabase.logger) {
                client, scratch in
                let store = EventStore(client: client, logger: TestDatabase.logger)
                let notifier = LogNotifier(client: client, logger: TestDatabase.logger)
                var proxied = scratch
                proxied.host = "127.0.0.1"
                proxied.port = proxy.port
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await notifier.run() }
                    defer { group.cancelAll() }
                    let last = try await Runner.appendCountedEvents(store, count: 3000)
                    // The runner reaches PostgreSQL through the proxy; its 4th batch's COMMIT
                    // answer is lost.
                    let counts = StreamCounts { call, _, pid in
                        if call == 4 { proxy.arm(pid: pid) }
                    }
                    try await proxied.withRunningClient(logger: TestDatabase.logger) { proxiedClient in
                        let runnerStore = EventStore(client: proxiedClient, logger: TestDatabase.logger)
                        let runner = ProjectionRunner(
                            projection: counts, store: runnerStore, notifier: notifier, options: Runner.fast)
                        try await Runner.running(runner) {
                            try await Runner.waitForApplied(3000, store)
                            try await Runner.waitForCheckpoint(last, store)
                        }
                    }
                    #expect(proxy.droppedAcks.count == 1, "the COMMIT answer was not lost")
                    // Every event was given to apply once: the 4th batch, committed though its
                    // runner saw the COMMIT fail, was not applied again after the reconnection.
                    #expect(counts.calls.allEvents == 3000)
                    try await Self.expectExactlyOnceAndEqualToRebuild(
                        store, notifier, each: 300, last: last, rebuilt: StreamCounts())
                }
            }
        } catch {
            try await proxy.stop()
            throw error
        }
        try await proxy.stop()
    }

    @Test("a runner whose checkpoint was moved under its batch refuses to commit it (checkpointMoved)")
    func checkpointMovedGuard() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            let last = try await Runner.appendCountedEvents(store, count: 3000)
            // In the 4th batch, before the runner writes, a second instance that wrongly
            // believes it holds the lease applies the same events and moves the checkpoint
            // past them (and commits).
            let rogue = StreamCounts()
            let counts = StreamCounts { call, events, _ in
                guard call == 4 else { return }
                try await store.client.withConnection { connection in
                    try await connection.inTransaction(logger: TestDatabase.logger) { connection in
                        try await connection.query(
                            "SET LOCAL search_path TO projection_stream_counts_1, public", logger: TestDatabase.logger)
                        try await rogue.apply(events, on: connection, logger: TestDatabase.logger)
                        let to = events[events.count - 1].checkpoint
                        try await connection.query(
                            """
                            UPDATE public.projection_checkpoints
                            SET checkpoint_tx = \(String(to.transactionID))::text::xid8,
                                checkpoint_position = \(to.position),
                                events_applied = events_applied + \(Int64(events.count))
                            WHERE name = 'stream_counts' AND generation = 1
                            """,
                            logger: TestDatabase.logger)
                    }
                }
            }
            let runner = ProjectionRunner(projection: counts, store: store, notifier: notifier, options: Runner.fast)
            try await Runner.running(runner) {
                try await Runner.waitForApplied(3000, store)
                try await Runner.waitForCheckpoint(last, store)
            }
            // The runner was given the 4th batch's events too, refused to commit them, and went
            // on from the moved checkpoint: the rogue's write is the only one that counts.
            #expect(counts.calls.events([4]) > 0)
            #expect(rogue.calls.count == 1)
            #expect(counts.calls.allEvents == 3000)
            try await Self.expectExactlyOnceAndEqualToRebuild(
                store, notifier, each: 300, last: last, rebuilt: StreamCounts())
        }
    }
}
