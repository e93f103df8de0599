import EventStore
import Foundation
import Logging
import PostgresNIO
import Synthetic
import Testing
import VigilTesting

@Suite("Cancellation")
struct CancellationTests {
    /// Whether the (only) pooled connection is inside a transaction that has an id.
    static func leakedTransaction(_ client: PostgresClient) async throws -> Bool {
        let rows = try await client.query("SELECT pg_current_xact_id_if_assigned()::text", logger: TestDatabase.logger)
        return try await rows.decode(String?.self).first { _ in true }.flatMap { $0 } != nil
    }

    @Test("a transaction cancelled mid-way rolls back and never returns its connection to the pool inside it")
    func cancelledTransaction() async throws {
        var settings = try TestDatabase.settings()
        settings.maximumConnections = 1  // so the next query gets the very same connection back
        try await ScratchDatabase.with(settings: settings, prefix: "vigil_test", logger: TestDatabase.logger) {
            client, _ in
            let store = EventStore(client: client, logger: TestDatabase.logger)
            let (started, signal) = AsyncStream.makeStream(of: Void.self)
            let writer = Task {
                try await store.transaction { transaction in
                    try await transaction.append(to: "camera-a", events: [detection()])
                    signal.yield()
                    try await Task.sleep(for: .seconds(30))
                }
            }
            for await _ in started { break }
            writer.cancel()
            _ = await writer.result

            #expect(try await Self.leakedTransaction(client) == false)
            #expect(try await store.readAll().isEmpty, "the cancelled append must not commit")
            let appended = try await store.append(to: "camera-a", events: [detection()], expected: .noStream)
            #expect(appended.version == 1)
        }
    }

    /// PostgresNIO never answers a query sent on a connection that has closed. A group-commit
    /// flusher whose `BEGIN` went through just before PostgreSQL stopped once waited on its
    /// next statement for good: its requests never got an answer, and SIGTERM could not stop
    /// the server (found by tools/faults/pg-restart).
    @Test("a transaction whose connection closes mid-way fails at once instead of waiting forever")
    func connectionClosedMidTransaction() async throws {
        try await ScratchDatabase.with(
            settings: try TestDatabase.settings(), prefix: "vigil_test", logger: TestDatabase.logger
        ) {
            client, _ in
            let store = EventStore(client: client, logger: TestDatabase.logger)
            let outcome = await withDeadline(.seconds(60)) {
                try await store.transaction { transaction in
                    try await transaction.append(to: "camera-a", events: [detection()])
                    let pid = try await transaction.connection.query(
                        "SELECT pg_backend_pid()", logger: TestDatabase.logger
                    )
                    .decode(Int32.self).first { _ in true }!
                    // Another pooled connection ends this transaction's session.
                    try await client.query("SELECT pg_terminate_backend(\(pid))", logger: TestDatabase.logger)
                    let clock = ContinuousClock()
                    let deadline = clock.now + .seconds(20)
                    while !transaction.connection.isClosed && clock.now < deadline {
                        try await Task.sleep(for: .milliseconds(10))
                    }
                    #expect(transaction.connection.isClosed)
                    // The statement a writer would send next, now on a closed connection.
                    try await transaction.connection.query("SELECT 1", logger: TestDatabase.logger)
                }
            }
            guard let outcome else {
                Issue.record("the transaction was still waiting after 60 s")
                return
            }
            #expect(throws: PostgresConnectionClosed.self) { try outcome.get() }
            #expect(try await store.readAll().isEmpty, "the interrupted append must not commit")
            let appended = try await store.append(to: "camera-a", events: [detection()], expected: .noStream)
            #expect(appended.version == 1)
        }
    }

    /// The retention run (`POST /api/system/cleanup`) and the archive's export, import and the
    /// migrator ran their statements unguarded on a leased connection: a backend terminated
    /// under one left it waiting for good, its pool slot taken. Each statement now fails at
    /// once on a closed connection (``PostgresConnection/guardedQuery(_:logger:)``).
    @Test("a retention run whose session is terminated fails at once instead of waiting forever")
    func retentionRunOnAClosedConnection() async throws {
        try await TestDatabase.withStore { store in
            let client = store.client
            try await store.append(to: "camera-a", events: [detection()])
            let outcome = await withDeadline(.seconds(60)) {
                try await store.archiveExpired(cutoff: Date()) {
                    // The run holds the retention lock: end its session from another connection,
                    // and let the close arrive before the run's next statement.
                    let holder = try await client.query(
                        """
                        SELECT pid FROM pg_locks
                        WHERE locktype = 'advisory' AND granted AND objid::int8 = \(EventStore.retentionLock & 0xFFFF_FFFF)
                        """, logger: TestDatabase.logger
                    ).decode(Int32.self).first { _ in true }
                    let pid = try #require(holder, "no session holds the retention lock")
                    try await client.query("SELECT pg_terminate_backend(\(pid))", logger: TestDatabase.logger)
                    try await Task.sleep(for: .milliseconds(500))
                } begin: { _ in
                } page: { _ in
                } seal: { _ in
                    ArchivedSegment(name: "never", fileBytes: 0, sha256: "")
                } record: { _, _ in
                    AppendRequest(stream: "retention", events: [detection()])
                }
            }
            guard let outcome else {
                Issue.record("the retention run was still waiting after 60 s")
                return
            }
            #expect(throws: PostgresConnectionClosed.self) { try outcome.get() }
            #expect(try await store.readAll().count == 1, "the run wrote nothing")
            #expect(try await store.archivedSegments().isEmpty)
        }
    }
}
