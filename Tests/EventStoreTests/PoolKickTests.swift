import EventStore
import Foundation
import PostgresNIO
import ServiceLifecycle
import Testing
import VigilTesting

/// PostgresNIO 1.33's pool opens no connection for a request made while 20 are already being
/// opened, and then waits for a leased one to come back (``PoolKick``). The pools Vigil runs
/// serve such requests anyway.
@Suite struct PoolKickTests {
    /// 25 requests at once, each holding its connection until all 25 have one: without the
    /// kick, the five made while 20 connections were being opened wait for ever, though the
    /// pool may open 40.
    @Test func requestsMadeWhileTwentyConnectionsAreOpeningAllGetOne() async throws {
        let logger = TestDatabase.logger
        let settings = try TestDatabase.settings()
        #expect(settings.maximumConnections >= 30)
        let holders = 25
        try await settings.withRunningClient(logger: logger) { client in
            let holding = Tally()
            let outcome = await withDeadline(.seconds(30)) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<holders {
                        group.addTask {
                            try await client.withConnection { connection in
                                await holding.add()
                                try await waitUntil("every request holds a connection", timeout: .seconds(60)) {
                                    await holding.value == holders
                                }
                                try await connection.guardedQuery("SELECT 1", logger: logger)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            let held = await holding.value
            #expect(outcome != nil, "\(held) of \(holders) requests got a connection within 30 s")
            try outcome?.get()
        }
    }

    /// In the server's service group it stops at the graceful shutdown without an error (one
    /// would fail the server's stop).
    @Test func aGracefulShutdownStopsItWithoutAnError() async throws {
        let logger = TestDatabase.logger
        try await TestDatabase.settings().withRunningClient(logger: logger) { client in
            let group = ServiceGroup(
                services: [PoolKick(client: client, interval: .milliseconds(5))], gracefulShutdownSignals: [],
                logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await Task.sleep(for: .milliseconds(100))
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }
    }
}
