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
    /// The apply that terminates its own PostgreSQL backend after writing its rows: the
    /// connection dies in the middle of that batch, as in a crash. This instance is dead from
    /// then on: every later apply throws, so it makes no progress after it.
    let terminateOnCall: Int?
    /// Runs at the start of every apply, before its rows are written: call number, the events
    /// and the runner's backend pid.
    let beforeWrite: (@Sendable (_ call: Int, _ events: [RecordedEvent], _ pid: Int32) async throws -> Void)?
    /// A deferred constraint trigger on the table that fails the `COMMIT` of the transaction
    /// writing its `firing`-th row (counted by a sequence, which no rollback resets): once.
    let commitFault: (firing: Int, action: CommitFault)?
    let calls = Counter()
    var batchInterval: Duration = .zero

    enum CommitFault: String, Sendable, CaseIterable {
        /// The trigger raises an error (SQLSTATE 40001): the COMMIT fails, the server rolls back.
        case raise
        /// The trigger terminates its own backend: the connection dies in the middle of COMMIT.
        case terminate
    }

    final class Counter: Sendable {
        private let value = Mutex(0)
        private let terminatedFlag = Mutex(false)
        /// Per call: the events it was given and the backend it ran on.
        private let log = Mutex([Int: (events: Int, pid: Int32)]())
        func next() -> Int {
            value.withLock {
                $0 += 1; return $0
            }
        }
        var count: Int { value.withLock { $0 } }
        /// The `terminateOnCall` call has terminated its backend.
        var terminated: Bool { terminatedFlag.withLock { $0 } }
        func markTerminated() { terminatedFlag.withLock { $0 = true } }
        func record(_ call: Int, events: Int, pid: Int32) { log.withLock { $0[call] = (events, pid) } }
        /// The events given to `calls` (by number).
        func events(_ calls: some Sequence<Int>) -> Int {
            log.withLock { log in calls.reduce(0) { $0 + (log[$1]?.events ?? 0) } }
        }
        /// The events given to every call so far.
        var allEvents: Int { log.withLock { $0.values.reduce(0) { $0 + $1.events } } }
        /// The backend the last call ran on (the live lease's connection).
        var lastPID: Int32? { log.withLock { $0.max { $0.key < $1.key }?.value.pid } }
    }

    init(
        failOnCalls: Set<Int> = [], terminateOnCall: Int? = nil,
        commitFault: (firing: Int, action: CommitFault)? = nil,
        beforeWrite: (@Sendable (_ call: Int, _ events: [RecordedEvent], _ pid: Int32) async throws -> Void)? = nil
    ) {
        self.failOnCalls = failOnCalls
        self.terminateOnCall = terminateOnCall
        self.commitFault = commitFault
        self.beforeWrite = beforeWrite
    }

    func createTables(on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            "CREATE TABLE stream_counts (stream text PRIMARY KEY, n bigint NOT NULL)", logger: logger)
        guard let (firing, action) = commitFault else { return }
        let fault =
            switch action {
            case .raise: "RAISE EXCEPTION 'injected failure at COMMIT' USING ERRCODE = '40001';"
            case .terminate: "PERFORM pg_terminate_backend(pg_backend_pid());"
            }
        // At COMMIT the search path is `public` again: the trigger names its schema.
        for statement in [
            "CREATE SEQUENCE commit_checks",
            """
            CREATE FUNCTION fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval(format('%I.commit_checks', TG_TABLE_SCHEMA)::regclass) = \(firing) THEN
                    \(fault)
                END IF;
                RETURN NULL;
            END $$
            """,
            """
            CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT OR UPDATE ON stream_counts
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_at_commit()
            """,
        ] {
            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
        }
    }

    func apply(_ events: [RecordedEvent], on connection: PostgresConnection, logger: Logger) async throws {
        let call = calls.next()
        if let terminateOnCall, call > terminateOnCall { throw InjectedFailure() }
        let pid =
            try await connection.query("SELECT pg_backend_pid()", logger: logger).decode(Int32.self)
            .first { _ in true } ?? 0
        calls.record(call, events: events.count, pid: pid)
        try await beforeWrite?(call, events, pid)
        try await connection.query(
            """
            INSERT INTO stream_counts (stream, n)
            SELECT s, count(*) FROM unnest(\(events.map(\.stream))::text[]) AS s GROUP BY s
            ON CONFLICT (stream) DO UPDATE SET n = stream_counts.n + excluded.n
            """,
            logger: logger
        )
        if call == terminateOnCall {
            // The server ends this session (FATAL 57P01) with the batch's rows written but not
            // committed: the query fails, the connection closes.
            defer { calls.markTerminated() }
            try await connection.query("SELECT pg_terminate_backend(pg_backend_pid())", logger: logger)
        }
        if failOnCalls.contains(call) { throw InjectedFailure() }
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

    @Test("every event is applied exactly once across a failure inside a batch and a connection killed mid-batch")
    func exactlyOnce() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            let firstLast = try await Self.appendCountedEvents(store, count: 3000)

            // First instance: its 4th call fails after writing its rows; the runner retries the
            // batch (call 5). In its 8th call its PostgreSQL backend is terminated after the rows
            // are written, and the instance dies there (later calls throw): a crash mid-batch.
            let failing = StreamCounts(failOnCalls: [4], terminateOnCall: 8)
            let first = ProjectionRunner(projection: failing, store: store, notifier: notifier, options: Self.fast)
            try await Self.running(first) {
                let deadline = ContinuousClock.now + .seconds(180)
                while !failing.calls.terminated && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
            // The crash landed mid-log, and only the batches committed before it count: not
            // the failed call 4, not the killed call 8 (nor anything after it).
            let crashed = try #require(try await Self.status(store))
            let committed = Int64(failing.calls.events([1, 2, 3, 5, 6, 7]))
            #expect(failing.calls.terminated, "the backend was never terminated")
            #expect(crashed.checkpoint < firstLast, "the crash must land before the end of the log")
            #expect(crashed.eventsApplied == committed)
            #expect(committed > 0 && committed < 3000)
            #expect(try await Self.counts(store).values.reduce(0, +) == committed, "rows and checkpoint disagree")

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

    @Test("one runner holds the lease; when its connection dies, the standby takes over from its checkpoint")
    func leaseTakeover() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            try await Self.appendCountedEvents(store, count: 1000)
            // `a` waits long before it tries again after an error: once its connection is
            // killed, only `b` can take the lease (without `a` being stopped gracefully).
            let slowRetry = ProjectionRunner.Options(
                batchSize: 300, leaseRetry: .milliseconds(100), errorRetry: .seconds(60))
            let aCounts = StreamCounts()
            let bCounts = StreamCounts()
            let a = ProjectionRunner(projection: aCounts, store: store, notifier: notifier, options: slowRetry)
            let b = ProjectionRunner(projection: bCounts, store: store, notifier: notifier, options: Self.fast)

            try await Self.running(a) {
                try await Self.waitForApplied(1000, store)
                #expect(a.state == .live)
                let aPID = try #require(aCounts.calls.lastPID)
                try await Self.running(b) {
                    // `b` runs and asks for the lease (a session other than `a`'s polls for it).
                    try await Self.waitUntil("b polls for the lease") {
                        try await store.client.query(
                            """
                            SELECT count(*) FROM pg_stat_activity
                            WHERE datname = current_database() AND query LIKE 'SELECT pg_try_advisory_lock(%'
                              AND pid <> \(aPID) AND state = 'idle'
                            """, logger: TestDatabase.logger
                        ).decode(Int64.self).first { _ in true } ?? 0 > 0
                    }
                    // While `a` lives, `b` stands by and applies nothing.
                    try await Self.appendCountedEvents(store, count: 500)
                    try await Self.waitForApplied(1500, store)
                    #expect(a.state == .live)
                    #expect(b.state == .standby)
                    #expect(bCounts.calls.count == 0, "the standby applied events while the lease was held")

                    // `a`'s session dies (it is not cancelled): the lease goes with it.
                    let aCalls = aCounts.calls.count
                    try await store.client.query("SELECT pg_terminate_backend(\(aPID))", logger: TestDatabase.logger)
                    try await Self.waitUntil("a notices that its connection is gone") { a.state != .live }
                    try await Self.waitUntil("b takes over") { b.state == .live }
                    try await Self.appendCountedEvents(store, count: 1000)
                    try await Self.waitForApplied(2500, store)
                    #expect(aCounts.calls.count == aCalls, "the dead instance applied events")
                    #expect(bCounts.calls.count > 0)
                    #expect(b.state == .live)
                }
            }
            let counts = try await Self.counts(store)
            #expect(counts.values.reduce(0, +) == 2500)
            #expect(counts.values.allSatisfy { $0 == 250 })
            #expect(try await Self.status(store)?.eventsApplied == 2500)
        }
    }

    /// Waits until `condition` holds (recording an issue after 180 s).
    static func waitUntil(_ what: String, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(180)
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("timed out: \(what)")
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
