import EventStore
import Foundation
import PostgresNIO
import Testing
import VigilTesting

/// The log's read and the append in one statement keep one plan per connection, made at their
/// first call (`vigil_read_log`, `vigil_append_batch`: schemas/store/0013_read_log_kept_plans.sql).
/// A plan chosen by the statistics of an empty `events` table would sort the whole log for each
/// page once the log has grown; theirs can't, because the functions turn sequential scans and
/// sorts off.
@Suite struct KeptPlanTests {
    /// Sequential and index scans of `events` counted by the connection's session and not yet
    /// reported (PostgreSQL 15 reports them between transactions at most once a second, so
    /// compare two counts taken in one transaction).
    private static func scans(
        on connection: PostgresConnection
    ) async throws -> (sequential: Int64, index: Int64, rowsRead: Int64) {
        let rows = try await connection.query(
            """
            SELECT coalesce(seq_scan, 0)::int8, coalesce(idx_scan, 0)::int8,
                   (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::int8
            FROM pg_stat_xact_user_tables WHERE relid = 'public.events'::regclass
            """,
            logger: TestDatabase.logger)
        for try await counts in rows.decode((Int64, Int64, Int64).self) { return counts }
        return (0, 0, 0)
    }

    /// One event appended through `vigil_append_batch` on `connection`.
    private static func appendInOneStatement(on connection: PostgresConnection) async throws {
        let event = detection(sequence: 1)
        let rows = try await connection.query(
            """
            SELECT count(*)::int8 FROM public.vigil_append_batch(
                ARRAY[\(event.id)]::uuid[], ARRAY['camera-kept'], ARRAY[\(event.type)], ARRAY[1],
                ARRAY[\(event.data)], ARRAY[\(event.metadata)])
            """,
            logger: TestDatabase.logger)
        for try await count in rows.decode(Int64.self) { #expect(count == 1) }
    }

    @Test func plansMadeOnAnEmptyLogStillWalkTheIndexesOnceItHasGrown() async throws {
        try await TestDatabase.withStore { store in
            try await store.client.withOpenConnection { connection in
                // Both plans are made now, on the empty log, and kept by this connection.
                #expect(try await store.read(after: .start, limit: 1000, on: connection).events.isEmpty)
                try await Self.appendInOneStatement(on: connection)

                let items = (0..<20_000).map { (stream: "camera-\($0 % 8)", event: detection(sequence: $0)) }
                #expect(try await store.appendBulk(items).appended == 20_000)

                _ = try await connection.query("BEGIN", logger: TestDatabase.logger)
                let before = try await Self.scans(on: connection)
                let page = try await store.read(after: .start, limit: 1000, on: connection)
                #expect(page.events.count == 1000)
                #expect(page.isFull)
                let afterRead = try await Self.scans(on: connection)
                // The page's rows and the odd one more (the newest checkpoint), not every event
                // after the checkpoint fetched and sorted. Twice over at most: while another
                // database's transaction runs (a suite beside this one), the read is made again
                // with that transaction left out (`withReadHorizon`).
                #expect(afterRead.rowsRead - before.rowsRead <= 2 * 1010, "the read fetched the whole log")
                #expect(afterRead.sequential == before.sequential, "the read scanned the whole log")
                #expect(afterRead.index > before.index)
                try await Self.appendInOneStatement(on: connection)
                let afterAppend = try await Self.scans(on: connection)
                #expect(afterAppend.sequential == before.sequential, "the append's id check scanned the whole log")
                #expect(afterAppend.index > afterRead.index)
                _ = try await connection.query("ROLLBACK", logger: TestDatabase.logger)
            }
        }
    }
}
