import EventStore
import Foundation
import Logging
import PostgresNIO
import Projections
import Testing
import VigilTesting

/// Keeps each event's `n` in a table whose CHECK refuses negative numbers: an event with a
/// negative `n` is a poison event (a data error, SQLSTATE 23514) until the constraint is dropped.
struct Amounts: Projection {
    let name = "amounts"
    let filter = LogFilter(streamPrefix: "amount-")

    func createTables(on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            CREATE TABLE amounts (position bigint PRIMARY KEY,
                                  n integer NOT NULL CONSTRAINT amounts_n_check CHECK (n >= 0))
            """, logger: logger)
    }

    func apply(_ events: [RecordedEvent], on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO amounts (position, n)
            SELECT p, (d::jsonb ->> 'n')::integer
            FROM unnest(\(events.map(\.checkpoint.position))::int8[], \(events.map(\.data))::text[]) AS x(p, d)
            """,
            logger: logger)
    }
}

/// Keeps each event's `label` in a B-tree index: a label over the index's 2,704 bytes is a
/// poison event of another kind (SQLSTATE 54000, a program limit), which no constraint names.
struct Labels: Projection {
    let name = "labels"
    let filter = LogFilter(streamPrefix: "label-")

    func createTables(on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            "CREATE TABLE labels (position bigint PRIMARY KEY, label text NOT NULL)", logger: logger)
        try await connection.query("CREATE INDEX labels_by_label ON labels (label)", logger: logger)
    }

    func apply(_ events: [RecordedEvent], on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO labels (position, label)
            SELECT p, d::jsonb ->> 'label'
            FROM unnest(\(events.map(\.checkpoint.position))::int8[], \(events.map(\.data))::text[]) AS x(p, d)
            """,
            logger: logger)
    }
}

@Suite("Poison events")
struct PoisonEventTests {
    static func options(_ policy: ProjectionRunner.PoisonPolicy) -> ProjectionRunner.Options {
        var options = ProjectionRunner.Options(
            batchSize: 40, leaseRetry: .milliseconds(100), errorRetry: .milliseconds(20), poisonPolicy: policy,
            attemptsBeforeParking: 3)
        options.maxErrorRetry = .milliseconds(100)
        options.maintenanceInterval = .milliseconds(100)
        return options
    }

    /// Appends `values` as one event each (stream `amount-<i % 3>`); returns their checkpoints.
    static func append(_ store: EventStore, _ values: [Int]) async throws -> [Checkpoint] {
        var checkpoints: [Checkpoint] = []
        for (index, value) in values.enumerated() {
            let event = NewEvent(type: "AmountRecorded", data: #"{"n": \#(value)}"#)
            checkpoints += try await store.append(to: "amount-\(index % 3)", events: [event]).checkpoints
        }
        return checkpoints
    }

    static func status(_ store: EventStore) async throws -> ProjectionStatus? {
        try await store.projectionStatuses().first { $0.name == "amounts" }
    }

    static func rows(_ store: EventStore) async throws -> [Int64: Int32] {
        var rows: [Int64: Int32] = [:]
        let result = try await store.client.query("SELECT position, n FROM amounts", logger: TestDatabase.logger)
        for try await (position, n) in result.decode((Int64, Int32).self) { rows[position] = n }
        return rows
    }

    static func waitFor(_ what: String, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(120)
        while try await !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("timed out waiting until \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test("a poison event is parked and reported, the rest flows, and a retry after the fix applies it")
    func parkAndRetry() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            var values = Array(0..<100)
            values[50] = -1  // the poison, in the middle of a batch
            let written = try await Self.append(store, values)
            let poison = written[50]
            let runner = ProjectionRunner(
                projection: Amounts(), store: store, notifier: notifier, options: Self.options(.park))
            try await ProjectionRunnerTests.running(runner) {
                try await Self.waitFor("the projection passes the poison") {
                    try await Self.status(store)?.checkpoint == written.last
                }
                // Everything else was applied, exactly once; the poison is parked, loudly.
                var rows = try await Self.rows(store)
                #expect(rows.count == 99)
                #expect(rows[poison.position] == nil)
                var status = try #require(try await Self.status(store))
                #expect(status.eventsApplied == 99)
                #expect(status.parkedEvents == 1)
                #expect(status.health == "degraded")
                #expect(status.state == "live")
                #expect(status.lagEvents == 0)
                var parked = try await store.parkedEvents(of: "amounts")
                #expect(parked.map(\.checkpoint) == [poison])
                #expect(parked.first?.error.contains("amounts_n_check") == true, "\(parked)")
                #expect(parked.first?.resolvedAt == nil)

                // Later events keep flowing.
                let later = try await Self.append(store, Array(200..<230))
                try await Self.waitFor("later events are applied") {
                    try await Self.status(store)?.checkpoint == later.last
                }
                #expect(try await Self.rows(store).count == 129)

                // A retry before the fix: still refused, still parked, with the attempt counted.
                #expect(try await store.retryParkedEvents(of: "amounts") == 1)
                try await Self.waitFor("the retry ran") {
                    try await store.parkedEvents(of: "amounts").first?.lastRetryAt != nil
                }
                parked = try await store.parkedEvents(of: "amounts")
                #expect(parked.first?.resolvedAt == nil)
                #expect((parked.first?.attempts ?? 0) >= 2)

                // The fix (here: the read model accepts negative numbers), then a retry.
                try await store.client.query(
                    "ALTER TABLE projection_amounts_1.amounts DROP CONSTRAINT amounts_n_check",
                    logger: TestDatabase.logger)
                #expect(try await store.retryParkedEvents(of: "amounts") == 1)
                try await Self.waitFor("the retried event is resolved") {
                    try await store.parkedEvents(of: "amounts").first?.resolvedAt != nil
                }
                rows = try await Self.rows(store)
                #expect(rows.count == 130)
                #expect(rows[poison.position] == -1)
                status = try #require(try await Self.status(store))
                #expect(status.eventsApplied == 130)
                #expect(status.parkedEvents == 0)
                #expect(status.health == "ok")

                // A rebuild meets the poison again (its new tables have the constraint): it
                // reports and parks it too, and swaps in with everything else.
                #expect(try await store.requestRebuild(of: Amounts()) == 2)
                try await Self.waitFor("generation 2 is live") {
                    try await Self.status(store)?.generation == 2
                }
                status = try #require(try await Self.status(store))
                #expect(status.parkedEvents == 1)
                #expect(status.eventsApplied == 129)
                #expect(try await store.parkedEvents(of: "amounts").map(\.checkpoint) == [poison])
                rows = try await Self.rows(store)
                #expect(rows.count == 129 && rows[poison.position] == nil)
            }
        }
    }

    @Test("a value over an index's size limit is parked like any data error, not retried forever")
    func overAnIndexLimitIsParked() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            // 3,000 combining marks in no pattern PostgreSQL's compression finds: 6 kB.
            var random = SystemRandomNumberGenerator()
            let marks = String(
                String.UnicodeScalarView((0..<3000).map { _ in Unicode.Scalar(UInt32(0x300 + random.next() % 0x70))! }))
            var checkpoints: [Checkpoint] = []
            for label in ["a", "b", "p" + marks, "c"] {
                let data = String(decoding: try JSONEncoder().encode(["label": label]), as: UTF8.self)
                checkpoints += try await store.append(
                    to: "label-1", events: [NewEvent(type: "Labelled", data: data)]
                ).checkpoints
            }
            let written = checkpoints
            let runner = ProjectionRunner(
                projection: Labels(), store: store, notifier: notifier, options: Self.options(.park))
            try await ProjectionRunnerTests.running(runner) {
                try await Self.waitFor("the projection passes the oversized label") {
                    try await store.projectionStatuses().first { $0.name == "labels" }?.checkpoint == written.last
                }
                let status = try #require(try await store.projectionStatuses().first { $0.name == "labels" })
                #expect(status.eventsApplied == 3)
                #expect(status.parkedEvents == 1)
                #expect(status.health == "degraded")
                let parked = try await store.parkedEvents(of: "labels")
                #expect(parked.map(\.checkpoint) == [written[2]])
                #expect(parked.first?.error.contains("labels_by_label") == true, "\(parked)")
            }
        }
    }

    @Test("in strict mode the runner stops at a poison event, says it is failing, and goes on after the fix")
    func strictModeStops() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            let written = try await Self.append(store, [1, 2, -3, 4, 5])
            let runner = ProjectionRunner(
                projection: Amounts(), store: store, notifier: notifier, options: Self.options(.stop))
            try await ProjectionRunnerTests.running(runner) {
                try await Self.waitFor("the runner reports the failure") {
                    try await Self.status(store)?.lastError?.contains("amounts_n_check") == true
                }
                let status = try #require(try await Self.status(store))
                #expect(status.state == "failing")
                #expect(status.health == "failing")
                #expect(status.lagEvents > 0, "a failing projection is never shown as caught up")
                #expect(status.parkedEvents == 0)
                #expect(status.checkpoint < written[2])
                #expect(try await store.parkedEvents(of: "amounts").isEmpty)

                try await store.client.query(
                    "ALTER TABLE projection_amounts_1.amounts DROP CONSTRAINT amounts_n_check",
                    logger: TestDatabase.logger)
                try await Self.waitFor("the runner goes on") {
                    try await Self.status(store)?.checkpoint == written.last
                }
                let after = try #require(try await Self.status(store))
                #expect(after.state == "live" && after.health == "ok")
                #expect(try await Self.rows(store).values.sorted() == [-3, 1, 2, 4, 5])
            }
        }
    }
}
