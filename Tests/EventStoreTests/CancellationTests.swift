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
}
