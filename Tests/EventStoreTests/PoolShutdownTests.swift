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
    /// Many idle connections, shut down again and again: a keep-alive ping that starts as the
    /// pool closes its connection is a query on a closed connection, which PostgresNIO (1.33)
    /// never completes, and the pool's `run()` would wait for it forever. Vigil's pools run
    /// no keep-alive (``PostgresSettings/clientConfiguration``). The race is narrow: 300
    /// rounds with a 1 ms keep-alive (`VIGIL_TEST_KEEPALIVE_MS=1 VIGIL_TEST_POOL_ROUNDS=300`)
    /// did not hit it on a quiet machine; a loaded API-suite loop did.
    @Test(arguments: 0..<(ProcessInfo.processInfo.environment["VIGIL_TEST_POOL_ROUNDS"].flatMap(Int.init) ?? 20))
    func aPoolWithIdleConnectionsShutsDown(_ round: Int) async throws {
        let logger = TestDatabase.logger
        var configuration = try TestDatabase.settings().clientConfiguration
        configuration.options.minimumConnections = 8
        if let every = ProcessInfo.processInfo.environment["VIGIL_TEST_KEEPALIVE_MS"].flatMap(Int.init) {
            configuration.options.keepAliveBehavior = .init(frequency: .milliseconds(every))
        }
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let running = Task { await client.run() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask { try await client.guardedQuery("SELECT pg_sleep(0.02)", logger: logger) }
            }
            try await group.waitForAll()
        }
        try await Task.sleep(for: .milliseconds(Int.random(in: 0...60)))
        running.cancel()
        let stopped = await withDeadline(.seconds(20)) { await running.value }
        #expect(stopped != nil, "the pool's run() did not end within 20 s of its cancellation")
    }

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
            _ = try await settings.with(database: scratch.database).withRunningClient(logger: logger) { admin in
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
