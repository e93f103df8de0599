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

    /// `vigil serve`'s pool closes an idle connection after 10 s: each return to the pool
    /// schedules a timer that stays allocated until then (docs/BENCHMARKS.md, Memory).
    @Test func idleConnectionsCloseAfterTenSeconds() {
        let pool = ServerParts.poolConfiguration(Self.configuration(pool: 40))
        #expect(pool.options.connectionIdleTimeout == .seconds(10))
        #expect(pool.options.minimumConnections == 0)
        #expect(pool.options.maximumConnections == 40)
    }
}
