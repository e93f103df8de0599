import EventStore
import Foundation
import PostgresNIO
import Redis
import Testing
import VigilTesting

@testable import API

/// A pool too small for what the runners hold starves every request (docs/RELIABILITY.md,
/// finding 2): the server refuses to start with it and says how large it must be.
@Suite struct PoolSizeTests {
    static func configuration(pool: Int, projections: Bool = true, redis: Bool = true) -> ServerConfiguration {
        var settings = PostgresSettings()
        settings.maximumConnections = pool
        var configuration = ServerConfiguration(postgres: settings)
        configuration.runProjections = projections
        configuration.redis = redis ? RedisSettings() : nil
        return configuration
    }

    /// The smallest pool the error names, or nil when `pool` is accepted.
    static func minimum(pool: Int, projections: Bool = true, redis: Bool = true) -> Int? {
        do {
            _ = try buildApplication(
                configuration(pool: pool, projections: projections, redis: redis), logger: testLogger)
            return nil
        } catch {
            let text = "\(error)"
            #expect(text.contains("VIGIL_PG_POOL_SIZE is \(pool)"), "\(text)")
            let number = text.split(separator: " ").drop { $0 != "to" }.dropFirst().first
            return number.flatMap { Int($0) }
        }
    }

    @Test func aPoolTooSmallForTheRunnersIsRefusedWithTheMinimum() throws {
        // With Redis: twelve read models (two leases each: live and rebuild) and three reactors
        // (the batch aggregator, the rule engine, the publisher: one each, never rebuilt), 27
        // leases and the notifier's connection, and 8 for requests.
        #expect(Self.minimum(pool: 10) == 36)
        #expect(Self.minimum(pool: 35) == 36)
        #expect(Self.minimum(pool: 36) == nil)
        // Without Redis there is no publisher.
        #expect(Self.minimum(pool: 34, redis: false) == 35)
        #expect(Self.minimum(pool: 35, redis: false) == nil)
        // Without runners only the notifier holds one.
        #expect(Self.minimum(pool: 10, projections: false) == nil)
        #expect(Self.minimum(pool: 8, projections: false) == 9)
    }

    /// The connections kept open (the pool's minimum): what the runners hold and the requests'
    /// share. Leasing and returning one of those schedules no idle timer (docs/BENCHMARKS.md,
    /// Memory: PostgresNIO's cancelled timers held 12 MB after the demo backfill).
    @Test func thePoolKeepsOpenWhatTheRunnersHoldAndTheRequestsShare() {
        func kept(pool: Int, projections: Bool = true, redis: Bool = true) -> Int {
            ServerParts.poolConfiguration(Self.configuration(pool: pool, projections: projections, redis: redis))
                .options.minimumConnections
        }
        #expect(kept(pool: 40) == 36)
        #expect(kept(pool: 100) == 36)
        #expect(kept(pool: 40, redis: false) == 35)
        #expect(kept(pool: 40, projections: false) == 9)
        // Never more than the pool (a pool too small is refused, above, when the server is built).
        #expect(kept(pool: 5, projections: false) == 5)
    }
}
