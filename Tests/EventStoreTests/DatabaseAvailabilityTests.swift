import EventStore
import Foundation
import PostgresNIO
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
            #expect(availability.current.error == "no answer within 0.001 seconds", "\(availability.current)")
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
}
