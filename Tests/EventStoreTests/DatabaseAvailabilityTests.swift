import EventStore
import Foundation
import Testing
import VigilTesting

/// The availability probe when PostgreSQL answers after the probe's deadline (a loaded machine,
/// a slow network): every probe gives up on a connection that is still being opened.
@Suite struct DatabaseAvailabilityTests {
    /// Each of those connections must be closed by the probe that opened it, not dropped: a
    /// PostgresNIO connection released open is a leak, and in debug builds its assertion aborts
    /// the process (this test process included), as `tools/test` once saw after a 3 s timeout.
    @Test func connectionsThatAnswerAfterTheDeadlineAreClosedNotDropped() async throws {
        let availability = DatabaseAvailability(
            settings: try TestDatabase.settings(), logger: TestDatabase.logger, interval: .milliseconds(20),
            timeout: .milliseconds(1))
        let run = Task { try await availability.run() }
        // No connect + SELECT 1 answers within 1 ms: two failed probes in a row mean down.
        let clock = ContinuousClock()
        let giveUp = clock.now + .seconds(30)
        while availability.isUp && clock.now < giveUp { try await Task.sleep(for: .milliseconds(20)) }
        // Many more probes, each abandoning a connection in flight.
        try await Task.sleep(for: .seconds(1))
        run.cancel()
        _ = await run.result
        // The abandoned probes finish connecting meanwhile, and close what they opened.
        try await Task.sleep(for: .seconds(3))
        #expect(!availability.isUp)
        #expect(availability.current.error == "no answer within 0.001 seconds", "\(availability.current)")
    }
}
