import Foundation
import Logging
import Redis
import Synchronization
import Testing
import VigilTesting

/// Runs against the Redis of `tools/stack` (`source .data/stack.env`); every test works under a
/// random key prefix and deletes its keys afterwards.
@Suite("Redis client")
struct RedisClientTests {
    static let logger = Logger(label: "vigil.redis.tests")

    /// Runs `body` with a client and a fresh key prefix, then deletes the prefix's keys.
    static func withRedis(_ body: (RedisClient, _ prefix: String) async throws -> Void) async throws {
        let settings = try #require(try RedisSettings.fromEnvironment(), "these tests need Redis (VIGIL_REDIS=off)")
        let client = RedisClient(settings: settings, logger: logger)
        defer { client.shutdown() }
        let prefix = "vigil-test:\(UUID().uuidString):"
        do {
            try await body(client, prefix)
        } catch {
            try? await deleteKeys(client, prefix)
            throw error
        }
        try await deleteKeys(client, prefix)
    }

    static func deleteKeys(_ client: RedisClient, _ prefix: String) async throws {
        var cursor = "0"
        repeat {
            let reply = try await client.send(["SCAN", cursor, "MATCH", prefix + "*", "COUNT", "1000"])
            let page = try #require(reply.array)
            cursor = try #require(page[0].string)
            let keys = try #require(page[1].array).compactMap(\.string)
            if !keys.isEmpty { try await client.del(keys) }
        } while cursor != "0"
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    @Test("ping")
    func ping() async throws {
        try await Self.withRedis { client, _ in
            try await client.ping()
            #expect(try await client.send(["ECHO", "hi"]) == RedisValue("hi"))
        }
    }

    @Test("lpush, rpush, llen, lrange, lrem, lmove")
    func lists() async throws {
        try await Self.withRedis { (client, prefix) async throws in
            let key = prefix + "list"
            #expect(try await client.lpush(key, ["a", "b"]) == 2)
            #expect(try await client.rpush(key, ["c", "a"]) == 4)
            #expect(try await client.llen(key) == 4)
            #expect(try await client.lrange(key, 0, -1) == ["b", "a", "c", "a"])
            #expect(try await client.lrange(key, 1, 2) == ["a", "c"])
            #expect(try await client.lrem(key, 0, "a") == 2)
            #expect(try await client.lmove(key, prefix + "other") == "c")
            #expect(try await client.lrange(prefix + "other", 0, -1) == ["c"])
            #expect(try await client.llen(prefix + "missing") == 0)
            #expect(try await client.lrange(prefix + "missing", 0, -1) == [])
            #expect(try await client.lmove(prefix + "missing", key) == nil)
        }
    }

    @Test("blmove returns a value pushed before or during the wait, and nil after its timeout")
    func blmove() async throws {
        try await Self.withRedis { client, prefix in
            let (source, destination) = (prefix + "source", prefix + "destination")
            try await client.lpush(source, ["first", "second"])
            #expect(try await client.blmove(source, destination, timeout: 1) == "first")
            #expect(try await client.blmove(source, destination, from: .left, to: .right, timeout: 1) == "second")
            #expect(try await client.lrange(destination, 0, -1) == ["first", "second"])

            async let moved = client.blmove(source, destination, timeout: 5)
            try await Task.sleep(for: .milliseconds(300))
            try await client.rpush(source, ["late"])
            #expect(try await moved == "late")

            let clock = ContinuousClock()
            var result: String? = "unset"
            let elapsed = try await clock.measure {
                result = try await client.blmove(source, destination, timeout: 0.3)
            }
            #expect(result == nil)
            #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(3), "took \(elapsed)")
        }
    }

    @Test("brpop pops from the first non-empty list and returns nil after its timeout")
    func brpop() async throws {
        try await Self.withRedis { client, prefix in
            try await client.lpush(prefix + "b", ["x", "y"])
            let popped = try #require(try await client.brpop([prefix + "a", prefix + "b"], timeout: 1))
            #expect(popped.key == prefix + "b")
            #expect(popped.value == "x")
            #expect(try await client.llen(prefix + "b") == 1)
            #expect(try await client.brpop([prefix + "empty"], timeout: 0.2) == nil)
        }
    }

    @Test("get and set, with and without expiry")
    func getSet() async throws {
        try await Self.withRedis { client, prefix in
            let key = prefix + "value"
            #expect(try await client.get(key) == nil)
            try await client.set(key, "v1")
            #expect(try await client.get(key) == "v1")
            #expect(try await client.send(["TTL", key]) == .integer(-1))
            try await client.set(key, "v2", expireSeconds: 100)
            #expect(try await client.get(key) == "v2")
            let ttl = try #require(try await client.send(["TTL", key]).integer)
            #expect((1...100).contains(ttl))
            try await client.set(prefix + "short", "gone", expireSeconds: 1)
            try await Task.sleep(for: .milliseconds(2100))
            #expect(try await client.get(prefix + "short") == nil)
        }
    }

    @Test("unicode and binary values round trip")
    func binarySafe() async throws {
        try await Self.withRedis { client, prefix in
            let values = [
                "héllo wörld 🌍", "nul\u{0}inside", "\r\n$-1\r\n*2\r\n", "", String(repeating: "x", count: 100_000),
            ]
            try await client.rpush(prefix + "list", values)
            #expect(try await client.lrange(prefix + "list", 0, -1) == values)
            for (index, value) in values.enumerated() {
                try await client.set(prefix + "key-\(index)-\(value.prefix(8))", value)
                #expect(try await client.get(prefix + "key-\(index)-\(value.prefix(8))") == value)
            }
            let bytes: [UInt8] = [0xff, 0x00, 0xfe, 0x0d, 0x0a, 0x80]
            #expect(try await client.send([Array("SET".utf8), Array((prefix + "bytes").utf8), bytes]) == .status("OK"))
            #expect(try await client.send(["GET", prefix + "bytes"]) == .string(bytes))
        }
    }

    @Test("an error reply is thrown as RedisError.server and the connection stays usable")
    func serverError() async throws {
        try await Self.withRedis { client, prefix in
            try await client.set(prefix + "string", "not a list")
            let error = await #expect(throws: RedisError.self) { try await client.lpush(prefix + "string", ["x"]) }
            guard case .server(let message) = error else {
                Issue.record("expected RedisError.server, got \(String(describing: error))")
                return
            }
            #expect(message.contains("WRONGTYPE"))
            await #expect(throws: RedisError.self) { try await client.send(["NO-SUCH-COMMAND"]) }
            try await client.ping()
        }
    }

    @Test("a client pointed at a closed port throws RedisError.connection, quickly and repeatedly")
    func closedPort() async throws {
        let client = RedisClient(host: "127.0.0.1", port: TestRedisServer.freePort(), connectTimeout: .seconds(1))
        defer { client.shutdown() }
        let elapsed = await ContinuousClock().measure {
            for _ in 0..<3 {
                let error = await #expect(throws: RedisError.self) { try await client.ping() }
                #expect(error.map(Self.isConnectionError) == true, "got \(String(describing: error))")
            }
            let error = await #expect(throws: RedisError.self) { try await client.blmove("a", "b", timeout: 5) }
            #expect(error.map(Self.isConnectionError) == true, "got \(String(describing: error))")
        }
        #expect(elapsed < .seconds(5), "took \(elapsed)")
    }

    @Test("50 concurrent lpush calls all land")
    func concurrentPushes() async throws {
        try await Self.withRedis { client, prefix in
            let key = prefix + "concurrent"
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<50 {
                    group.addTask { try await client.lpush(key, ["\(index)"]) }
                }
                try await group.waitForAll()
            }
            #expect(try await client.llen(key) == 50)
            #expect(Set(try await client.lrange(key, 0, -1)) == Set((0..<50).map { "\($0)" }))
        }
    }

    @Test("shutdown while calls are in flight: what Redis did is reported as done, the rest throws, all sockets close")
    func shutdownInFlight() async throws {
        // A private server: its INFO counts this test's connections and blocked calls only.
        let port = TestRedisServer.freePort()
        let server = try TestRedisServer(port: port)
        defer { server.stop() }
        let probe = RedisClient(host: "127.0.0.1", port: port, logger: Self.logger)
        defer { probe.shutdown() }
        try await Self.waitForPing(probe)
        let client = RedisClient(host: "127.0.0.1", port: port, logger: Self.logger)
        try await client.ping()

        let (blocked, pushes) = try await withThrowingTaskGroup(of: (Bool, Outcome).self) { group in
            // Calls Redis is holding: in flight for sure when the client shuts down.
            for _ in 0..<4 {
                group.addTask { (true, await Outcome.of { try await client.blmove("empty", "out", timeout: 5) }) }
            }
            try await waitUntil("Redis holds the four blocking calls", timeout: .seconds(10)) {
                try await Self.info(probe, "blocked_clients") == 4
            }
            // Calls racing the shutdown: done, in flight or not sent yet, whichever it is.
            for index in 0..<36 {
                group.addTask { (false, await Outcome.of { "\(try await client.rpush("list", ["\(index)"]))" }) }
            }
            client.shutdown()
            var blocked: [Outcome] = []
            var pushes: [Outcome] = []
            for try await (isBlocking, result) in group {
                if isBlocking { blocked.append(result) } else { pushes.append(result) }
            }
            return (blocked, pushes)
        }
        // Nothing was ever pushed to `empty`: a blocking call times out (nil) or throws.
        #expect(blocked.allSatisfy { $0 == .succeeded(nil) || $0 == .connectionError }, "\(blocked)")
        #expect(pushes.allSatisfy { if case .other = $0 { false } else { true } }, "\(pushes)")
        // A push reported done was done, and one reported failed was not.
        let succeeded = pushes.filter { if case .succeeded = $0 { true } else { false } }.count
        #expect(try await probe.llen("list") == succeeded)
        await #expect(throws: RedisError.connection("the Redis client is shut down")) { try await client.ping() }
        // Every connection of the shut client closes, the busy ones once their command is over:
        // only the probe's stays.
        try await waitUntil("the shut client's connections are closed", timeout: .seconds(10)) {
            try await Self.info(probe, "connected_clients") == 1
        }
    }

    @Test("waiting blocking calls don't hold up other commands")
    func blockingCallsDontStarve() async throws {
        try await Self.withRedis { client, prefix in
            let finished = Counter()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<8 {
                    group.addTask {
                        defer { finished.increment() }
                        _ = try await client.blmove(prefix + "idle-\(index)", prefix + "out", timeout: 30)
                    }
                }
                try await Task.sleep(for: .milliseconds(200))
                for index in 0..<10 { try await client.rpush(prefix + "busy", ["\(index)"]) }
                // Nothing is pushed to the idle lists: had the pushes waited for the blocking
                // calls, those would have ended first (at their timeout).
                #expect(finished.value == 0)
                group.cancelAll()
                var results: [Result<Void, any Error>] = []
                while let result = await group.nextResult() { results.append(result) }
                #expect(results.count == 8)
                for result in results {
                    #expect(throws: CancellationError.self) { try result.get() }
                }
            }
            #expect(try await client.llen(prefix + "busy") == 10)
        }
    }

    @Test("cancelling a task blocked without timeout ends the call within about a second")
    func cancelBlocking() async throws {
        try await Self.withRedis { client, prefix in
            let waiter = Task { try await client.blmove(prefix + "never", prefix + "out", timeout: 0) }
            try await Task.sleep(for: .milliseconds(300))
            let clock = ContinuousClock()
            let start = clock.now
            waiter.cancel()
            let result = await waiter.result
            #expect(clock.now - start < .seconds(2.5), "took \(clock.now - start)")
            #expect(throws: CancellationError.self) { try result.get() }
        }
    }

    @Test("while Redis is down calls throw; once it is back the same client works again")
    func reconnects() async throws {
        let port = TestRedisServer.freePort()
        var server = try TestRedisServer(port: port)
        defer { server.stop() }
        let client = RedisClient(host: "127.0.0.1", port: port, connectTimeout: .seconds(1), logger: Self.logger)
        defer { client.shutdown() }
        try await Self.waitForPing(client)
        try await client.set("key", "before")

        server.stop()
        for _ in 0..<2 {
            let error = await #expect(throws: RedisError.self) { try await client.get("key") }
            #expect(error.map(Self.isConnectionError) == true, "got \(String(describing: error))")
        }

        server = try TestRedisServer(port: port)
        try await Self.waitForPing(client)
        #expect(try await client.get("key") == nil, "a fresh server without persistence")
        try await client.set("key", "after")

        // A restart between two calls costs no failed call: the old connection is found closed.
        server.stop()
        server = try TestRedisServer(port: port)
        let probe = RedisClient(host: "127.0.0.1", port: port, logger: Self.logger)
        defer { probe.shutdown() }
        try await Self.waitForPing(probe)
        #expect(try await client.get("key") == nil)
    }

    @Test("a hung server makes calls throw RedisError.connection after the command timeout")
    func hungServer() async throws {
        let port = TestRedisServer.freePort()
        let server = try TestRedisServer(port: port)
        defer { server.stop() }
        var settings = RedisSettings(host: "127.0.0.1", port: port)
        settings.commandTimeout = .milliseconds(500)
        let client = RedisClient(settings: settings, logger: Self.logger)
        defer { client.shutdown() }
        try await Self.waitForPing(client)

        server.pause()
        let elapsed = await ContinuousClock().measure {
            let error = await #expect(throws: RedisError.self) { try await client.ping() }
            #expect(error.map(Self.isConnectionError) == true, "got \(String(describing: error))")
            let blocking = await #expect(throws: RedisError.self) { try await client.brpop(["list"], timeout: 0.2) }
            #expect(blocking.map(Self.isConnectionError) == true, "got \(String(describing: blocking))")
        }
        #expect(elapsed >= .milliseconds(900) && elapsed < .seconds(5), "took \(elapsed)")

        server.resume()
        try await Self.waitForPing(client)
    }

    static func isConnectionError(_ error: RedisError) -> Bool {
        if case .connection = error { return true }
        return false
    }

    /// Waits until `client` answers (a server starting, restarting or resuming).
    static func waitForPing(_ client: RedisClient) async throws {
        try await waitUntil("Redis answers a ping", timeout: .seconds(10)) {
            try await client.ping()
            return true
        }
    }

    /// A number from `INFO clients` (`connected_clients`, `blocked_clients`).
    static func info(_ client: RedisClient, _ field: String) async throws -> Int? {
        let text = try await client.send(["INFO", "clients"]).string ?? ""
        let line = text.split(whereSeparator: \.isNewline).first { $0.hasPrefix(field + ":") }
        return line.flatMap { Int($0.dropFirst(field.count + 1)) }
    }
}

/// How a call ended.
enum Outcome: Equatable, Sendable {
    case succeeded(String?)
    case connectionError
    case other(String)

    static func of(_ body: () async throws -> String?) async -> Outcome {
        do {
            return .succeeded(try await body())
        } catch let error as RedisError where RedisClientTests.isConnectionError(error) {
            return .connectionError
        } catch {
            return .other(String(reflecting: error))
        }
    }
}

/// A count tasks can bump.
final class Counter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

@Suite("Redis settings")
struct RedisSettingsTests {
    @Test("read from VIGIL_REDIS_*, off with VIGIL_REDIS=off")
    func fromEnvironment() throws {
        #expect(try RedisSettings.fromEnvironment([:]) == RedisSettings(host: "127.0.0.1", port: 6379))
        let settings = try #require(
            try RedisSettings.fromEnvironment([
                "VIGIL_REDIS_HOST": "redis.local", "VIGIL_REDIS_PORT": "6380", "VIGIL_REDIS_PASSWORD": "secret",
            ]))
        #expect(settings == RedisSettings(host: "redis.local", port: 6380, password: "secret"))
        #expect(try RedisSettings.fromEnvironment(["VIGIL_REDIS": "off", "VIGIL_REDIS_PORT": "6380"]) == nil)
        #expect(throws: RedisError.invalidSetting(name: "VIGIL_REDIS_PORT", value: "x")) {
            try RedisSettings.fromEnvironment(["VIGIL_REDIS_PORT": "x"])
        }
    }
}
