import EventStore
import Foundation
import PostgresNIO
import Projections
import Testing
import VigilTesting

/// A live runner under a flood of events: it puts off moving its checkpoint past events its
/// projection doesn't take (``ProjectionRunner/Options/progressInterval``), which would cost a
/// commit each on every page most read models skip, and a read model with a
/// ``Projection/batchInterval`` applies the flood in fewer batches.
@Suite("Runners under a flood")
struct RunnerFloodTests {
    /// The maintenance tick is an hour, so the quiet tick that writes a put-off move is the
    /// one the runner shortens to `progressInterval` (else the log's 5 s idle poll).
    static let options = {
        var options = ProjectionRunnerTests.fast
        options.progressInterval = .seconds(1)
        options.maintenanceInterval = .seconds(3600)
        return options
    }()

    /// Counts the moves of `stream_counts`'s checkpoint (a trigger on the checkpoints table).
    static func countMoves(_ store: EventStore) async throws {
        let statements: [PostgresQuery] = [
            "CREATE TABLE checkpoint_moves (n bigint NOT NULL)",
            "INSERT INTO checkpoint_moves VALUES (0)",
            """
            CREATE FUNCTION count_checkpoint_move() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN UPDATE checkpoint_moves SET n = n + 1; RETURN NULL; END $$
            """,
            """
            CREATE TRIGGER count_checkpoint_move AFTER UPDATE ON projection_checkpoints FOR EACH ROW
            WHEN (NEW.name = 'stream_counts'
                  AND (NEW.checkpoint_tx, NEW.checkpoint_position) <> (OLD.checkpoint_tx, OLD.checkpoint_position))
            EXECUTE FUNCTION count_checkpoint_move()
            """,
        ]
        for statement in statements { try await store.client.query(statement, logger: TestDatabase.logger) }
    }

    static func moves(_ store: EventStore) async throws -> Int64 {
        let rows = try await store.client.query("SELECT n FROM checkpoint_moves", logger: TestDatabase.logger)
        for try await n in rows.decode(Int64.self) { return n }
        return 0
    }

    /// The most moves or batches at least `interval` apart that fit in `elapsed` (one more for
    /// the timer's slack). A loaded machine that appends slowly raises it; the rule stays.
    static func atMost(_ interval: Duration, in elapsed: Duration) -> Int {
        Int(elapsed / interval) + 2
    }

    /// Appends `count` events, one transaction each, event `i` to stream `stream(i)`; returns
    /// the last one's checkpoint.
    static func appendOneByOne(
        _ store: EventStore, count: Int, stream: (Int) -> String
    ) async throws -> Checkpoint {
        var last = Checkpoint.start
        for sequence in 0..<count {
            let appended = try await store.append(to: stream(sequence), events: [detection(sequence: sequence)])
            last = appended.checkpoints[0]
        }
        return last
    }

    /// Appends `count` events the projection skips (`other-…` streams), one transaction each.
    static func appendSkipped(_ store: EventStore, count: Int) async throws -> Checkpoint {
        try await appendOneByOne(store, count: count) { "other-\($0)" }
    }

    @Test("moves past skipped events are put off, written when the log goes quiet, and folded into the next batch")
    func movesArePutOff() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            let runner = ProjectionRunner(
                projection: StreamCounts(), store: store, notifier: notifier, options: Self.options)
            try await ProjectionRunnerTests.running(runner) {
                _ = try await store.append(to: "count-0", events: [detection()])
                try await ProjectionRunnerTests.waitForApplied(1, store)
                try await Self.countMoves(store)

                // 40 commits the projection skips, each a page of its own or not: far fewer
                // moves than commits, and the last one written once the log is quiet.
                let skipped = 40
                let started = ContinuousClock.now
                let quiet = try await Self.appendSkipped(store, count: skipped)
                try await ProjectionRunnerTests.waitForCheckpoint(quiet, store)
                let afterQuiet = try await Self.moves(store)
                let bound = Self.atMost(Self.options.progressInterval, in: .now - started)
                #expect(afterQuiet >= 1)
                #expect(afterQuiet <= Int64(bound), "\(afterQuiet) moves for \(skipped) skipped commits")
                let status = try #require(try await ProjectionRunnerTests.status(store))
                #expect(status.checkpoint == quiet)
                #expect(status.lagEvents == 0)
                #expect(status.eventsApplied == 1)

                // Skipped commits, then one the projection takes: the batch that applies it
                // moves the checkpoint from where the table has it, past both.
                let resumed = ContinuousClock.now
                _ = try await Self.appendSkipped(store, count: 20)
                let taken = try await store.append(to: "count-0", events: [detection()]).checkpoints[0]
                try await ProjectionRunnerTests.waitForApplied(2, store)
                try await ProjectionRunnerTests.waitForCheckpoint(taken, store)
                let folded = try await Self.moves(store) - afterQuiet
                #expect(folded >= 1)
                #expect(
                    folded <= Int64(Self.atMost(Self.options.progressInterval, in: .now - resumed)),
                    "\(folded) moves for 21 commits")
                let after = try #require(try await ProjectionRunnerTests.status(store))
                #expect(after.checkpoint == taken)
                #expect(after.eventsApplied == 2)
                #expect(after.lastError == nil)
                #expect(try await ProjectionRunnerTests.counts(store) == ["count-0": 2])
            }
        }
    }

    @Test("a read model with a batch interval applies a flood of commits in a few batches, every event once")
    func batchIntervalGroupsAFlood() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            let counts = {
                var counts = StreamCounts()
                counts.batchInterval = .seconds(1)
                return counts
            }()
            let runner = ProjectionRunner(projection: counts, store: store, notifier: notifier, options: Self.options)
            try await ProjectionRunnerTests.running(runner) {
                _ = try await store.append(to: "count-0", events: [detection()])
                try await ProjectionRunnerTests.waitForApplied(1, store)
                let before = counts.calls.count
                let started = ContinuousClock.now
                // 30 commits the projection takes, one after another: each would be a page
                // and a batch of its own for a runner that keeps up.
                let last = try await Self.appendOneByOne(store, count: 30) { "count-\($0 % 3)" }
                try await ProjectionRunnerTests.waitForApplied(31, store)
                try await ProjectionRunnerTests.waitForCheckpoint(last, store)
                let batches = counts.calls.count - before
                #expect(batches >= 1)
                #expect(
                    batches <= Self.atMost(counts.batchInterval, in: .now - started),
                    "\(batches) batches for 30 commits")
                #expect(try await ProjectionRunnerTests.counts(store) == ["count-0": 11, "count-1": 10, "count-2": 10])
                let status = try #require(try await ProjectionRunnerTests.status(store))
                #expect(status.eventsApplied == 31)
            }
        }
    }

    @Test("a projection's lag in seconds counts from the newest event its checkpoint passed, not the newest it applied")
    func lagSecondsCountsSkippedEvents() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            _ = try await store.append(to: "count-0", events: [detection()])
            let runner = ProjectionRunner(
                projection: StreamCounts(), store: store, notifier: notifier, options: Self.options)
            try await ProjectionRunnerTests.running(runner) {
                try await ProjectionRunnerTests.waitForApplied(1, store)
            }
            // Two skipped events a second apart; the checkpoint has passed the first. The
            // applied event is an hour older (as the checkpoint's row says).
            let passed = try await store.append(to: "other-1", events: [detection()]).checkpoints[0]
            try await Task.sleep(for: .seconds(1))
            _ = try await store.append(to: "other-2", events: [detection()])
            try await store.client.query(
                """
                UPDATE projection_checkpoints SET checkpoint_tx = \(String(passed.transactionID))::text::xid8,
                       checkpoint_position = \(passed.position), last_event_at = last_event_at - interval '1 hour'
                WHERE name = 'stream_counts'
                """,
                logger: TestDatabase.logger)
            let status = try #require(try await ProjectionRunnerTests.status(store))
            #expect(status.lagEvents == 1)
            #expect(status.lagSeconds >= 0.9 && status.lagSeconds < 600, "lag \(status.lagSeconds) s")
        }
    }
}
