import EventStore
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Synthetic
import Testing
import VigilTesting

/// A write that can't get a pooled connection gives up within its bound and writes nothing,
/// rather than committing long after its caller was told it failed.
@Suite struct WriteLeaseTests {
    final class Holders: Sendable {
        let leased = Atomic<Int>(0)
        let finished = Atomic<Bool>(false)
    }

    @Test("No pooled connection within the bound: the write fails before it begins, and nothing commits later")
    func writeGivesUpBeforeBeginning() async throws {
        var settings = try TestDatabase.settings()
        settings.maximumConnections = 2
        try await ScratchDatabase.with(settings: settings, prefix: "vigil_test", logger: TestDatabase.logger) {
            client, _ in
            var store = EventStore(client: client, logger: TestDatabase.logger)
            store.writeLeaseTimeout = .milliseconds(500)
            // Both connections of the pool busy for 3 s.
            let holders = Holders()
            let busy = Task {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<2 {
                        group.addTask {
                            try await client.withConnection { connection in
                                holders.leased.add(1, ordering: .relaxed)
                                try await connection.query("SELECT pg_sleep(3)", logger: TestDatabase.logger)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                holders.finished.store(true, ordering: .relaxed)
            }
            try await waitUntil("both connections are leased") { holders.leased.load(ordering: .relaxed) == 2 }

            await #expect(throws: ConnectionLeaseTimeout.self) {
                try await store.append(to: "late", events: [detection()])
            }
            // It gave up while the connections were still busy, not when they came free.
            let finishedBefore = holders.finished.load(ordering: .relaxed)
            #expect(!finishedBefore)
            try await busy.value
            #expect(try await store.version(of: "late") == 0, "the write must not have committed later")
            // Connections free again: the same write goes through.
            let written = try await store.append(to: "late", events: [detection()])
            #expect(written.checkpoints.count == 1)
            #expect(try await store.version(of: "late") == 1)
        }
    }
}
