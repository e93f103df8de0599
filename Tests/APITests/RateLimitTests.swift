import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Redis
import Testing
import VigilTesting

@testable import API

/// Rate limiting (`/api/system/rate-limits`, Redis sliding windows), through the real router.
@Suite struct RateLimitTests {
    static let limit = HTTPField.Name("X-RateLimit-Limit")!
    static let remaining = HTTPField.Name("X-RateLimit-Remaining")!
    static let reset = HTTPField.Name("X-RateLimit-Reset")!

    static func configure(
        _ redis: RedisSettings?, window: Duration = .seconds(10)
    )
        -> @Sendable (
            inout ServerConfiguration
        ) -> Void
    {
        { configuration in
            configuration.redis = redis
            configuration.redisPrefix = "test-\(UUID().uuidString.prefix(8)):"
            configuration.runHeuristicAnalyzer = false
            configuration.rateLimitWindow = window
            // Generous for a loaded test machine: past it a request passes without limits (and
            // without headers), which the tests below would read as a missing limit.
            configuration.rateLimitTimeout = .seconds(5)
        }
    }

    @Test(
        "off by default; once on (an event), the requests over a tier's limit get 429 with Retry-After until the window moves"
    )
    func limitsAndRecovery() async throws {
        try await withApp(configure: Self.configure(sharedRedisSettings())) { store, client in
            let before = try await client.send(.get, "/api/cameras")
            #expect(before.status == .ok && before.headers[Self.limit] == nil, "no limits by default")
            let limits = try await client.send(
                .patch, "/api/system/rate-limits", json: #"{"enabled": true, "standard": 5, "search": 2}"#)
            #expect(limits.status == .ok)
            let body = try json(limits)
            #expect(body["standard"] as? Int == 5 && body["enabled"] as? Bool == true)
            let changed = try #require(try await store.readStream(SystemSettings.stream)?.events.last)
            #expect(changed.type == RateLimitsChanged.type)
            // The limiter reads the settings at most once a second.
            try await waitUntil("the limits apply") {
                try await client.send(.get, "/api/cameras").headers[Self.limit] == "5"
            }

            // Until the first 429: each answer says how much is left of the 5.
            var refused: (response: TestResponse, sent: Int, answered: Int)?
            var allowed: [Int] = []
            for _ in 0..<50 {
                let sent = Int(Date().timeIntervalSince1970)
                let response = try await client.send(.get, "/api/cameras")
                if response.status == .tooManyRequests {
                    refused = (response, sent, Int(Date().timeIntervalSince1970.rounded(.up)))
                    break
                }
                #expect(response.status == .ok && response.headers[Self.limit] == "5")
                allowed.append(Int(response.headers[Self.remaining] ?? "") ?? -1)
            }
            let (tooMany, sent, answered) = try #require(refused, "no 429 in 50 requests at 5 per window")
            // The wait above used at least one of the 5 (more leave the window on a slow machine).
            #expect(allowed.count >= 4)
            #expect(allowed.allSatisfy { (0..<5).contains($0) })
            #expect(tooMany.headers[Self.remaining] == "0" && tooMany.headers[Self.limit] == "5")
            let retryAfter = try #require(Int(tooMany.headers[.retryAfter] ?? ""))
            #expect((1...10).contains(retryAfter))
            // Reset and Retry-After name the same moment: the server's clock when it answered,
            // plus the wait (each rounded up to a second).
            let reset = try #require(Int(tooMany.headers[Self.reset] ?? ""))
            #expect((sent - 1...answered + 1).contains(reset - retryAfter), "reset \(reset), retry after \(retryAfter)")
            #expect(
                try json(tooMany)["detail"] as? String
                    == "Rate limit exceeded: 5 requests per window for the standard tier; retry in \(retryAfter) s")
            // The search tier has a budget of its own (its limit, not the standard one's).
            var searchRefused: TestResponse?
            for _ in 0..<20 {
                let search = try await client.send(.get, "/api/events/search?q=person")
                #expect(search.status != .tooManyRequests || search.headers[Self.limit] == "2")
                if search.status == .tooManyRequests {
                    searchRefused = search
                    break
                }
                #expect(search.status == .ok && search.headers[Self.limit] == "2")
            }
            #expect(searchRefused != nil, "no 429 in 20 searches at 2 per window")
            // The refusals are in the log (rate-limited themselves).
            let rejected = try await store.readAll().filter { $0.type == CommandRejected.type }
                .map { try CommandRejected.decode($0.data) }
            #expect(rejected.contains { $0.action == "rate_limit_exceeded" && $0.resourceType == "standard" })
            #expect(rejected.contains { $0.action == "rate_limit_exceeded" && $0.resourceType == "search" })

            try await Task.sleep(for: .seconds(Double(retryAfter) + 0.5))
            // The oldest request has left the window: one more fits.
            #expect(try await client.send(.get, "/api/cameras").status == .ok, "the window moved")
            // The health probes are never limited.
            for _ in 0..<8 { #expect(try await client.send(.get, "/health").status == .ok) }
        }
    }

    @Test("a hanging Redis: requests pass (or get 503 when configured to fail closed), and /ready says so")
    func hangingRedis() async throws {
        for failClosed in [false, true] {
            let port = TestRedisServer.freePort()
            let redis = try TestRedisServer(port: port)
            defer { redis.stop() }
            var settings = RedisSettings(host: "127.0.0.1", port: port)
            // A request that waited for Redis itself could only finish after the resume below.
            settings.commandTimeout = .seconds(3600)
            let base = Self.configure(settings)
            try await withApp(configure: {
                base(&$0)
                $0.rateLimitTimeout = .milliseconds(500)
                $0.rateLimitFailClosed = failClosed
            }) { _, client in
                #expect(
                    try await client.send(.patch, "/api/system/rate-limits", json: #"{"enabled": true}"#).status == .ok)
                try await waitUntil("the limits apply") {
                    try await client.send(.get, "/api/cameras").headers[Self.limit] == "600"
                }
                redis.pause()
                var resumed = false
                defer { if !resumed { redis.resume() } }
                let outcome = await withDeadline(.seconds(120)) { try await client.send(.get, "/api/cameras") }
                let response = try #require(try outcome?.get(), "the request waited for the hung Redis")
                if failClosed {
                    #expect(response.status == .serviceUnavailable)
                    #expect(try json(response)["detail"] as? String == "Rate limiter unavailable")
                } else {
                    #expect(response.status == .ok && response.headers[Self.limit] == nil)
                }
                let ready = try json(try await client.send(.get, "/ready"))
                #expect(ready["status"] as? String == "degraded")
                #expect((ready["checks"] as? [String: Any])?["rate_limiter"] as? String == "unavailable")
                #expect(ready["rate_limiter_policy"] as? String == (failClosed ? "requests refused" : "requests pass"))
                redis.resume()
                resumed = true
                try await waitUntil("the limiter answers again") {
                    try await client.send(.get, "/api/cameras").headers[Self.limit] == "600"
                }
                let again = try json(try await client.send(.get, "/ready"))
                #expect((again["checks"] as? [String: Any])?["rate_limiter"] as? String == "healthy")
            }
        }
    }

    @Test("bad limits are a 422 naming the field, and write nothing")
    func badLimits() async throws {
        try await withApp(configure: Self.configure(nil)) { store, client in
            for body in [#"{"standard": 0}"#, #"{"search": 1000001}"#, #"{"enabled": "yes"}"#, #"{"ingest": 1.5}"#] {
                let response = try await client.send(.patch, "/api/system/rate-limits", json: body)
                #expect(response.status == .unprocessableContent, "\(body)")
            }
            #expect(try await store.readStream(SystemSettings.stream) == nil)
            let current = try json(try await client.send(.get, "/api/system/rate-limits"))
            #expect(current["enabled"] as? Bool == false && current["standard"] as? Int == 600)
        }
    }
}
