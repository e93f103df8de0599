import EventStore
import Foundation
import PostgresNIO
import Synchronization
import Synthetic
import Testing
import VigilTesting

/// The availability probe when PostgreSQL can't answer within the probe's deadline (a loaded
/// machine, a slow network): every probe gives up on a connection still being opened.
@Suite struct DatabaseAvailabilityTests {
    /// The probe reports the database down and leaves no connection of its own open: a
    /// connection the probe opened must be closed by it, not dropped (a PostgresNIO connection
    /// released open leaks, and once the server ends it the debug assertion aborts the process,
    /// as `tools/test` saw after a 3 s timeout). The connect timeout is the probe's deadline, so
    /// at 1 ms the race itself (a connection that opens in time and answers too late) is rare
    /// here; this guards the deadline path and what it leaves behind.
    @Test func aProbePastItsDeadlineSaysDownAndLeavesNoConnectionOpen() async throws {
        try await ScratchDatabase.with(
            settings: try TestDatabase.settings(), prefix: "vigil_test", logger: TestDatabase.logger
        ) { client, settings in
            let availability = DatabaseAvailability(
                // Not faster: each probe opens a backend that outlives its 1 ms deadline, and
                // probes every 20 ms piled up to the cluster's max_connections, failing every
                // suite running beside this one with "too many clients".
                settings: settings, logger: TestDatabase.logger, interval: .milliseconds(250),
                timeout: .milliseconds(1))
            let run = Task { try await availability.run() }
            // No connect + SELECT 1 answers within 1 ms: two failed probes in a row mean down.
            let clock = ContinuousClock()
            let giveUp = clock.now + .seconds(30)
            while availability.isUp && clock.now < giveUp { try await Task.sleep(for: .milliseconds(50)) }
            // Many more probes, each abandoning a connection in flight.
            try await Task.sleep(for: .seconds(1))
            run.cancel()
            _ = await run.result
            // The abandoned probes finish connecting meanwhile, and must close what they opened.
            try await Task.sleep(for: .seconds(3))
            #expect(!availability.isUp)
            // The probe's deadline and PostgresNIO's connect timeout are both 1 ms: whichever
            // fires first says why (both mean no answer in time).
            let error = availability.current.error ?? ""
            #expect(
                error == "no answer within 0.001 seconds" || error.contains("Connect timeout (1 ms)"),
                "\(availability.current)")
            let rows = try await client.query(
                """
                SELECT count(*)::int FROM pg_stat_activity
                WHERE datname = current_database() AND application_name = 'vigil-probe'
                """, logger: TestDatabase.logger)
            var open = -1
            for try await count in rows.decode(Int.self) { open = count }
            #expect(open == 0, "probe connections left open")
        }
    }

    /// A request still waiting when the database goes down is cut short: ``untilDown(_:)``
    /// cancels its body and throws ``DatabaseAvailability/Down`` (the API's 503). A body that
    /// ran to its end would have returned its value instead. A request that comes after is
    /// refused at once, its body never run. Nothing listens on port 1, so every probe is refused.
    @Test func aBodyStillWaitingWhenTheDatabaseGoesDownIsCancelled() async throws {
        var settings = try TestDatabase.settings()
        settings.port = 1
        let availability = DatabaseAvailability(
            settings: settings, logger: TestDatabase.logger, interval: .milliseconds(50), timeout: .seconds(1))
        #expect(availability.isUp)
        let cancelled = Atomic<Int>(0)
        let waiting = Task {
            try await availability.untilDown {
                do {
                    try await Task.sleep(for: .seconds(60))
                } catch {
                    cancelled.add(1, ordering: .relaxed)
                    throw error
                }
                return "answered"
            }
        }
        let run = Task { try await availability.run() }
        let outcome = await waiting.result
        #expect(throws: DatabaseAvailability.Down.self) { try outcome.get() }
        #expect(cancelled.load(ordering: .relaxed) == 1)
        #expect(!availability.isUp)
        let ran = Atomic<Int>(0)
        await #expect(throws: DatabaseAvailability.Down.self) {
            try await availability.untilDown { ran.add(1, ordering: .relaxed) }
        }
        #expect(ran.load(ordering: .relaxed) == 0)
        run.cancel()
        _ = await run.result
    }

    /// Connection exhaustion (docs/RELIABILITY.md, finding 1): PostgreSQL refuses new
    /// connections and the pool has none left. The probe's own connection still answers, but
    /// requests could only wait: the probe must say down, and up again once slots free up. A
    /// pool that is only busy (every connection leased, new ones still possible) stays up.
    /// A role's `CONNECTION LIMIT` stands in for `max_connections` (both are SQLSTATE 53300).
    @Test func aPoolThatCantGetAConnectionIsDownAndABusyOneIsNot() async throws {
        try await ScratchDatabase.with(
            settings: try TestDatabase.settings(), prefix: "vigil_test", logger: TestDatabase.logger
        ) { admin, settings in
            let logger = TestDatabase.logger
            let role = "vigil_limited_\(UUID().uuidString.prefix(8).lowercased())"
            try await admin.query("CREATE ROLE \(unescaped: role) LOGIN CONNECTION LIMIT 4", logger: logger)
            do {
                try await Self.exhaust(role: role, settings: settings, admin: admin)
            } catch {
                _ = try? await admin.query("DROP ROLE IF EXISTS \(unescaped: role)", logger: logger)
                throw error
            }
            try await admin.query("DROP ROLE IF EXISTS \(unescaped: role)", logger: logger)
        }
    }

    private static func exhaust(role: String, settings: PostgresSettings, admin: PostgresClient) async throws {
        let logger = TestDatabase.logger
        let limited = {
            var limited = settings
            limited.username = role
            limited.maximumConnections = 2
            return limited
        }()
        try await limited.withRunningClient(logger: logger) { pool in
            let availability = DatabaseAvailability(
                settings: limited, logger: logger, interval: .milliseconds(200), timeout: .seconds(2),
                pool: pool, leaseTimeout: .milliseconds(300))
            let run = Task { try await availability.run() }
            defer { run.cancel() }
            func sessions(_ application: String) async throws -> Int {
                let rows = try await admin.query(
                    """
                    SELECT count(*)::int FROM pg_stat_activity
                    WHERE usename = \(role) AND application_name = \(application)
                    """, logger: logger)
                for try await count in rows.decode(Int.self) { return count }
                return 0
            }

            // Busy: both pooled connections sleep for 3 s; the probe's lease waits past its
            // 300 ms, but a new connection opens (probe 1 + pool 2 + a new one = 4).
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<2 {
                    group.addTask { try await pool.query("SELECT pg_sleep(3)", logger: logger) }
                }
                try await Task.sleep(for: .seconds(2))
                #expect(availability.isUp, "a busy pool was taken for down: \(availability.current)")
                try await group.waitForAll()
            }
            #expect(availability.isUp)

            // Exhausted: a foreign client takes every free slot, Vigil's pooled sessions end.
            var foreign: [PostgresConnection] = []
            do {
                var foreignSettings = limited
                foreignSettings.applicationName = "hog"
                let configuration = try foreignSettings.connectionConfiguration(connectTimeout: .seconds(5))
                let clock = ContinuousClock()
                let deadline = clock.now + .seconds(30)
                while clock.now < deadline {
                    _ = try await admin.query(
                        """
                        SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                        WHERE usename = \(role) AND application_name = \(limited.applicationName)
                        """, logger: logger)
                    do {
                        foreign.append(
                            try await PostgresConnection.connect(
                                on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration,
                                id: foreign.count + 10, logger: logger
                            ).get())
                    } catch let error as PSQLError where error.serverInfo?[.sqlState] == "53300" {
                        // Full. Done once the pool holds nothing either (else it took a slot first).
                        if try await sessions(limited.applicationName) == 0 { break }
                    } catch {
                        // Not refused (a connect that timed out on a loaded machine): a slot may
                        // still be free, and the pool would take it and stay up. Again.
                        continue
                    }
                }
                #expect(try await sessions(limited.applicationName) == 0)
                do {
                    try await waitUntil("the probe says down", timeout: .seconds(20)) { !availability.isUp }
                } catch {
                    // What held the slots, for the next reader of a failure. Seen twice in nine
                    // runs of this suite on 2026-11-30 while a bad plan loaded PostgreSQL; not
                    // reproduced since (16 runs, 3 with both cores busy). Likely cause, fixed
                    // above: a foreign connect that failed for another reason than "full" ended
                    // the loop with a slot free.
                    let rows = try await admin.query(
                        """
                        SELECT string_agg(application_name || ':' || coalesce(state, '-'), ', ')
                        FROM pg_stat_activity WHERE usename = \(role)
                        """, logger: logger)
                    var held = ""
                    for try await list in rows.decode(String?.self) { held = list ?? "" }
                    Issue.record("probe: \(availability.current); foreign: \(foreign.count); role's sessions: \(held)")
                    throw error
                }
                let error = availability.current.error ?? ""
                #expect(error.contains("refuses new ones") && error.contains("53300"), "\(error)")

            } catch {
                for connection in foreign { try? await connection.close() }
                throw error
            }
            // The foreign client lets go: up again, and the pool serves.
            for connection in foreign { try await connection.close() }
            try await waitUntil("the probe says up", timeout: .seconds(20)) { availability.isUp }
            try await pool.query("SELECT 1", logger: logger)
        }
    }
}
