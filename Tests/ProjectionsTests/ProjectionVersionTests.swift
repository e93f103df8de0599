import EventStore
import Foundation
import Logging
import PostgresNIO
import Projections
import Testing
import VigilTesting

/// Keeps each event's `n`; version 2 also keeps `n * 10` (a column version 1 doesn't have).
struct Versioned: Projection {
    let name = "versioned"
    let filter = LogFilter(streamPrefix: "versioned-")
    let version: Int32

    func createTables(on connection: PostgresConnection, logger: Logger) async throws {
        let tens = version >= 2 ? ", tens integer NOT NULL" : ""
        try await connection.query(
            PostgresQuery(unsafeSQL: "CREATE TABLE versioned (position bigint PRIMARY KEY, n integer NOT NULL\(tens))"),
            logger: logger)
    }

    func apply(_ events: [RecordedEvent], on connection: PostgresConnection, logger: Logger) async throws {
        let (columns, values) = version >= 2 ? (", tens", ", (d::jsonb ->> 'n')::integer * 10") : ("", "")
        var binds = PostgresBindings()
        binds.append(events.map(\.position))
        binds.append(events.map(\.data))
        try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO versioned (position, n\(columns))
                    SELECT p, (d::jsonb ->> 'n')::integer\(values) FROM unnest($1::int8[], $2::text[]) AS x(p, d)
                    """, binds: binds),
            logger: logger)
    }
}

@Suite("Projection versions")
struct ProjectionVersionTests {
    static func generations(
        _ store: EventStore
    ) async throws -> (live: Int32, rebuild: Int32?, versions: [Int32: Int32]) {
        let rows = try await store.client.query(
            """
            SELECT p.live_generation, p.rebuild_generation, c.generation, c.projection_version
            FROM projections p JOIN projection_checkpoints c USING (name) WHERE p.name = 'versioned'
            """, logger: TestDatabase.logger)
        var result: (live: Int32, rebuild: Int32?, versions: [Int32: Int32]) = (0, nil, [:])
        for try await (live, rebuild, generation, version) in rows.decode((Int32, Int32?, Int32, Int32).self) {
            result.live = live
            result.rebuild = rebuild
            result.versions[generation] = version
        }
        return result
    }

    @Test("a read model built by an older version is rebuilt by the newer one, once, and serves meanwhile")
    func olderVersionRebuilds() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            let options = ProjectionRunner.Options(leaseRetry: .milliseconds(50), errorRetry: .milliseconds(50))
            for n in 1...5 {
                _ = try await store.append(
                    to: "versioned-\(n)", events: [NewEvent(type: "Counted", data: #"{"n": \#(n)}"#)])
            }
            let head = try await store.head()

            // Version 1 builds generation 1.
            try await store.registerProjections([Versioned(version: 1)])
            #expect(try await Self.generations(store).versions == [1: 1])
            let first = ProjectionRunner(
                projection: Versioned(version: 1), store: store, notifier: notifier, options: options)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await first.run() }
                defer { group.cancelAll() }
                let caughtUp = try await store.waitForProjections(["versioned"], toReach: head, timeout: .seconds(60))
                #expect(caughtUp)
            }

            // Version 2 registered: a rebuild into generation 2, by version 2; asked again, the same.
            try await store.registerProjections([Versioned(version: 2)])
            let asked = try await Self.generations(store)
            #expect(asked.live == 1 && asked.rebuild == 2 && asked.versions == [1: 1, 2: 2])
            try await store.registerProjections([Versioned(version: 2)])
            #expect(try await Self.generations(store).rebuild == 2)
            // Meanwhile generation 1 serves as it was.
            let served = try await store.client.query("SELECT count(*) FROM versioned", logger: TestDatabase.logger)
                .decode(Int64.self).first { _ in true }
            #expect(served == 5)

            // A version 3 while version 2's rebuild is under way: that rebuild starts again, by 3.
            try await store.registerProjections([Versioned(version: 3)])
            let restarted = try await Self.generations(store)
            #expect(restarted.live == 1 && restarted.rebuild == 3 && restarted.versions == [1: 1, 3: 3])

            // Version 3's runner rebuilds and swaps it in: the new column holds every event.
            let second = ProjectionRunner(
                projection: Versioned(version: 3), store: store, notifier: notifier, options: options)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await second.run() }
                defer { group.cancelAll() }
                let deadline = ContinuousClock.now + .seconds(60)
                while try await Self.generations(store).live != 3, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            #expect(try await Self.generations(store).live == 3)
            let tens = try await store.client.query(
                "SELECT sum(tens)::bigint FROM versioned", logger: TestDatabase.logger
            ).decode(Int64.self).first { _ in true }
            #expect(tens == 150)

            // An older code (a rollback) leaves the newer generation alone.
            try await store.registerProjections([Versioned(version: 2)])
            let after = try await Self.generations(store)
            #expect(after.live == 3 && after.rebuild == nil)
        }
    }
}
