import EventStore
import Foundation
import Logging
import PostgresNIO
import Synthetic
import Testing
import VigilTesting

/// A pool whose sessions were all terminated (what a PostgreSQL restart, or a test of one, does)
/// still shuts down: its `run()` ends once it is cancelled, whatever it handed out meanwhile.
@Suite struct PoolShutdownTests {
    @Test(arguments: 0..<10)
    func aPoolWhoseSessionsWereTerminatedStillShutsDown(_ round: Int) async throws {
        let settings = try TestDatabase.settings()
        let logger = TestDatabase.logger
        try await ScratchDatabase.with(settings: settings, prefix: "vigil_test", logger: logger) { _, scratch in
            let client = PostgresClient(configuration: scratch.clientConfiguration, backgroundLogger: logger)
            let running = Task { await client.run() }
            // Several pooled connections, busy at once, then idle in the pool.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<6 {
                    group.addTask { try await client.guardedQuery("SELECT pg_sleep(0.05)", logger: logger) }
                }
                try await group.waitForAll()
            }
            // Every session of the database ends (another client does it).
            try await settings.with(database: scratch.database).withRunningClient(logger: logger) { admin in
                try await admin.guardedQuery(
                    """
                    SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                    WHERE datname = current_database() AND pid <> pg_backend_pid()
                    """, logger: logger)
            }
            // Used right away: some connections handed out may be closed already.
            for _ in 0..<6 {
                _ = try? await client.guardedQuery("SELECT 1", logger: logger)
            }
            running.cancel()
            let stopped = await withDeadline(.seconds(20)) { await running.value }
            #expect(stopped != nil, "the pool's run() did not end within 20 s of its cancellation")
        }
    }
}
