import Foundation
import PostgresNIO
import Testing
import VigilTesting

@testable import EventStore

/// The read horizon leaves out the transactions of sessions marked as a read model's runner
/// (``ReadHorizon/readModelApplication``), which the log refuses to take events from.
@Suite struct ReadModelHorizonTests {
    @Test("a read model runner's open transaction holds nothing back, nor is it named; its session can't append")
    func readModelTransactionIsNotAHolder() async throws {
        try await TestDatabase.withStore { store in
            try await store.append(to: "camera-1", events: [detection()])
            let before = try await store.readSettled(after: .start)
            try await store.client.withConnection { connection in
                try await connection.query(
                    "SET application_name = \(unescaped: "'" + ReadHorizon.readModelApplication + "'")",
                    logger: TestDatabase.logger)
                try await ForeignHorizonTests.whileOpen(on: connection) { runner in
                    let appended = try await store.append(to: "camera-2", events: [detection()]).checkpoints[0]
                    #expect(appended.transactionID > runner.transaction)
                    #expect(try await store.foreignTransactions().contains(runner.transaction))
                    // Read at once, not "settled": the open transaction can't add an event.
                    let page = try await store.read(after: before.next)
                    #expect(page.events.map(\.checkpoint) == [appended])
                    #expect(!page.pendingBeyondHorizon)
                    #expect(try await store.head() == appended)
                    let holders = try await store.horizonHolders(limit: 100)
                    #expect(!holders.contains { $0.pid == runner.pid }, "\(holders)")
                    // And it can't: the log refuses an event from a marked session.
                    do {
                        try await connection.query(
                            """
                            INSERT INTO events (event_id, stream, version, type, data)
                            VALUES (gen_random_uuid(), 'camera-3', 1, 'DetectionRecorded', '{}')
                            """, logger: TestDatabase.logger)
                        Issue.record("a marked session appended an event")
                    } catch let error as PSQLError {
                        #expect(error.serverInfo?[.sqlState] == "42501", "\(error)")
                    }
                }
                try await connection.query("RESET application_name", logger: TestDatabase.logger)
            }
            // Unmarked, the same kind of transaction holds readers back again.
            try await store.client.withConnection { connection in
                try await ForeignHorizonTests.whileOpen(on: connection) { _ in
                    let settled = try await store.readSettled(after: .start)
                    let appended = try await store.append(to: "camera-4", events: [detection()])
                    let page = try await store.read(after: settled.next)
                    #expect(page.events.isEmpty)
                    #expect(page.pendingBeyondHorizon)
                    #expect(appended.checkpoints.count == 1)
                }
            }
        }
    }
}
