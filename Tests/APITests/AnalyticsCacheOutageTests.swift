import API
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Redis
import Testing
import VigilTesting

/// Issue 12, finding 7: a hung Redis must not stall analytics.
@Suite struct AnalyticsCacheOutageTests {
    static let routes = [
        "detection-trends", "risk-history", "camera-uptime", "object-distribution", "risk-score-distribution",
        "risk-score-trends",
    ].map { "/api/analytics/\($0)?\(AnalyticsAPITests.range)" }

    static let cache = HTTPField.Name("X-Cache")!

    /// Redis frozen (SIGSTOP) with a command timeout of an hour: a request that waited for Redis
    /// could only finish after the resume at the end. Each one finishes before it, with the body
    /// computed without the cache; once Redis is back the cache serves again.
    @Test func analyticsAnswerWithoutTheCacheWhileRedisHangs() async throws {
        let port = TestRedisServer.freePort()
        let redis = try TestRedisServer(port: port)
        defer { redis.stop() }
        try await withApp(configure: {
            var settings = RedisSettings(host: "127.0.0.1", port: port)
            settings.commandTimeout = .seconds(3600)
            $0.redis = settings
            $0.redisPrefix = "test-\(UUID().uuidString.prefix(8)):"
            $0.runHeuristicAnalyzer = false
            // Generous for a loaded test machine; still nothing next to the command timeout.
            $0.cacheTimeout = .milliseconds(500)
        }) { store, client in
            try await AnalyticsAPITests.seed(store)
            // Every read model the routes read caught up with the seed before the answers are
            // taken as the expected ones: analytics, and cameras (camera-uptime names them).
            _ = try await client.getEventually(Self.routes[0]) { $0["total_detections"] as? Int == 7 }
            _ = try await client.getEventually(Self.routes[4]) { $0["total_events"] as? Int == 7 }
            _ = try await client.getEventually(Self.routes[2]) { ($0["cameras"] as? [Any])?.count == 2 }
            var expected: [String: String] = [:]
            for route in Self.routes {
                let response = try await client.send(.get, route)
                #expect(response.status == .ok)
                expected[route] = String(buffer: response.body)
            }

            redis.pause()
            var resumed = false
            defer { if !resumed { redis.resume() } }
            for round in 0..<2 {
                for route in Self.routes {
                    let response = try await client.send(.get, route)
                    #expect(response.status == .ok, "\(route), round \(round)")
                    #expect(response.headers[Self.cache] == "MISS", "\(route), round \(round)")
                    #expect(String(buffer: response.body) == expected[route], "\(route), round \(round)")
                }
            }
            redis.resume()
            resumed = true

            try await waitUntil("the cache serves again") {
                try await client.send(.get, Self.routes[1]).headers[Self.cache] == "HIT"
            }
            let hit = try await client.send(.get, Self.routes[1])
            #expect(hit.headers[Self.cache] == "HIT")
            #expect(String(buffer: hit.body) == expected[Self.routes[1]])
        }
    }
}
