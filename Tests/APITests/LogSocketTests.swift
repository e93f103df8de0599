import AsyncHTTPClient
import EventStore
import Foundation
import HTTPTypes
import HummingbirdTesting
import HummingbirdWSClient
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import PostgresNIO
import Synchronization
import Testing
import VigilTesting

@testable import API

/// `/ws/log` over real sockets (HummingbirdWSClient against the whole server on a port).
@Suite struct LogSocketTests {
    /// What a socket received: its messages, parsed.
    final class Received: Sendable {
        private let texts = Mutex<[String]>([])

        func append(_ text: String) { texts.withLock { $0.append(text) } }
        var all: [[String: Any]] {
            texts.withLock { $0 }.compactMap { text in
                try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            }
        }
        var count: Int { texts.withLock { $0.count } }
        /// The `event` messages' checkpoints and event ids, in order.
        var events: [(checkpoint: String, id: String)] {
            all.compactMap { message in
                guard message["type"] as? String == "event", let checkpoint = message["checkpoint"] as? String,
                    let id = (message["data"] as? [String: Any])?["event_id"] as? String
                else { return nil }
                return (checkpoint, id)
            }
        }
    }

    /// Follows `/ws/log?query` until `done(received)` holds (or the server closes), then closes;
    /// a test issue if that takes over two minutes (nothing a test waits for takes that long).
    @discardableResult
    static func follow(
        port: Int, _ query: String, path: String = LogSocket.path, headers: HTTPFields = [:],
        into received: Received = Received(), until done: @escaping @Sendable (Received) -> Bool
    ) async throws -> WebSocketCloseFrame? {
        let outcome = await withDeadline(.seconds(120)) {
            try await Self.connect(port: port, path, query, headers: headers, into: received, until: done)
        }
        guard let outcome else {
            Issue.record("\(path)?\(query) did not get what the test waits for in 120 s: \(received.count) messages")
            return nil
        }
        return try outcome.get()
    }

    private static func connect(
        port: Int, _ path: String, _ query: String, headers: HTTPFields, into received: Received,
        until done: @escaping @Sendable (Received) -> Bool
    ) async throws -> WebSocketCloseFrame? {
        var configuration = WebSocketClientConfiguration()
        configuration.additionalHeaders = headers
        return try await WebSocketClient.connect(
            url: "ws://127.0.0.1:\(port)\(path)?\(query)", configuration: configuration, logger: testLogger
        ) { inbound, outbound, _ in
            if done(received) { return }
            for try await message in inbound.messages(maxSize: 1 << 22) {
                guard case .text(let text) = message else { continue }
                received.append(text)
                if done(received) { break }
            }
            try await outbound.close(.normalClosure, reason: nil)
        }
    }

    /// `count` events of a type no read model takes, one append each, on `stream`.
    static func appendEvents(_ store: EventStore, _ count: Int, stream: String, from first: Int = 0) async throws {
        for n in first..<(first + count) {
            try await store.append(to: stream, events: [NewEvent(type: "SocketProbe", data: #"{"n": \#(n)}"#)])
        }
    }

    /// The event ids of `stream`'s events, in log order, from the table.
    static func logOrder(_ store: EventStore, prefix: String) async throws -> [String] {
        var ids: [String] = []
        var after = Checkpoint.start
        while true {
            let page = try await store.read(after: after, filter: LogFilter(streamPrefix: prefix), limit: 1000)
            ids += page.events.map { $0.id.uuidString.lowercased() }
            after = page.next
            if !page.isFull { return ids }
        }
    }

    static func withLiveApp(
        configure: @escaping @Sendable (inout ServerConfiguration) -> Void = { _ in },
        _ body: @Sendable (EventStore, PostgresSettings, Int) async throws -> Void
    ) async throws {
        try await withScratchDatabase { store, scratch in
            var configuration = testConfiguration(scratch, live: true)
            configure(&configuration)
            try await testApplication(configuration, .live) { client in
                try await body(store, scratch, try #require(client.port))
            }
        }
    }

    @Test("from a checkpoint: the table first, then live, every event once, in log order, with its checkpoint")
    func catchUpThenLive() async throws {
        try await Self.withLiveApp { store, _, port in
            try await Self.appendEvents(store, 30, stream: "probe-a")
            let received = Received()
            async let followed = Self.follow(
                port: port, "after=\(Checkpoint.start.token)&stream_prefix=probe-", into: received
            ) {
                $0.events.count >= 60
            }
            try await waitUntil("the backlog arrived") { received.events.count >= 30 }
            try await Self.appendEvents(store, 30, stream: "probe-b")
            _ = try await followed
            #expect(received.all.first?["type"] as? String == "subscribed")
            #expect(received.all.first?["checkpoint"] as? String == Checkpoint.start.token)
            let expected = try await Self.logOrder(store, prefix: "probe-")
            #expect(received.events.map(\.id) == expected)
            #expect(received.events.map(\.checkpoint) == received.events.map(\.checkpoint).sorted())
        }
    }

    @Test("cut off in the middle of a burst and resumed from its last checkpoint: exactly the rest")
    func resumeAfterADisconnect() async throws {
        try await Self.withLiveApp { store, _, port in
            let head = try await store.head()
            // 200 events in 40 appends of 5, so that the burst outlasts the first socket.
            let burst = Task {
                for chunk in 0..<40 {
                    try await store.append(
                        to: "burst-\(chunk % 4)",
                        events: (0..<5).map { NewEvent(type: "SocketProbe", data: #"{"n": \#(chunk * 5 + $0)}"#) })
                }
            }
            let first = Received()
            try await Self.follow(port: port, "after=\(head.token)&stream_prefix=burst-", into: first) {
                $0.events.count >= 40
            }
            let last = try #require(first.events.last?.checkpoint)
            let second = Received()
            try await Self.follow(port: port, "after=\(last)&stream_prefix=burst-", into: second) {
                first.events.count + $0.events.count >= 200
            }
            try await burst.value
            let ids = first.events.map(\.id) + second.events.map(\.id)
            #expect(ids.count == 200 && Set(ids).count == 200)
            #expect(ids == (try await Self.logOrder(store, prefix: "burst-")))
        }
    }

    @Test("a client too slow for its buffer drops back to the table and still gets every event in order")
    func slowClientDropsBack() async throws {
        try await Self.withLiveApp(configure: { $0.logSocketBuffer = 2 }) { store, _, port in
            let received = Received()
            async let followed = Self.follow(port: port, "stream_prefix=bulk-", into: received) {
                $0.events.count >= 300
            }
            let logs = try #require(RecentLogs.current)
            // Two live subscribers: the /ws/events feed's follower (from the start) and this
            // socket. (Waiting for the log line "joined the live tail" was wrong: the feed's
            // join satisfied it, the events were appended before this socket subscribed, it
            // started after them and got nothing: RELIABILITY 15.)
            try await waitUntil("the socket joined the live tail") {
                let (_, health) = try await BodyLimitTests.send(
                    .GET, port: port, "/api/system/health/websocket", contentType: "application/json",
                    body: .bytes(ByteBuffer()))
                return (health["event_broadcaster"] as? [String: Any])?["live_subscribers"] as? Int == 2
            }
            // One transaction of 300 events: one page, which no 2-message buffer holds.
            _ = try await store.appendBulk(
                (0..<300).map { n in ("bulk-\(n % 3)", NewEvent(type: "SocketProbe", data: #"{"n": \#(n)}"#)) })
            do {
                try await waitUntil("the socket fell behind") { logs.text.contains("a /ws/log socket fell behind") }
            } catch {
                // If the tail ever publishes nothing again: what held it (RELIABILITY 15).
                let holders = (try? await store.horizonHolders(limit: 5)) ?? []
                Issue.record(
                    """
                    the tail did not publish the 300 events; horizon holders: \(holders)
                    last log records:
                    \(logs.text)
                    """)
                throw error
            }
            _ = try await followed
            #expect(received.events.map(\.id) == (try await Self.logOrder(store, prefix: "bulk-")))
        }
    }

    @Test("any other message gets /ws/events' error codes, and the socket stays open")
    func errors() async throws {
        try await Self.withLiveApp { _, _, port in
            let errors = Mutex<[String]>([])
            _ = try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/ws/log", logger: testLogger) {
                inbound, outbound, _ in
                try await outbound.write(.text("{"))
                try await outbound.write(.text(#"{"type": "subscribe", "channels": ["events"]}"#))
                try await outbound.write(.text("[1]"))
                try await outbound.write(.binary(ByteBuffer(bytes: [1, 2, 3])))
                try await outbound.write(.text("ping"))
                for try await message in inbound.messages(maxSize: 1 << 16) {
                    guard case .text(let text) = message else { continue }
                    if text.contains(#""type":"pong""#) { break }
                    let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
                    if object?["type"] as? String == "error", let code = object?["error"] as? String {
                        errors.withLock { $0.append(code) }
                    }
                }
                try await outbound.close(.normalClosure, reason: nil)
            }
            #expect(
                errors.withLock { $0 } == [
                    "invalid_json", "unknown_message_type", "invalid_message_format", "invalid_message_format",
                ])
        }
    }

    @Test("ping is answered, as text or JSON")
    func pingPong() async throws {
        try await Self.withLiveApp { _, _, port in
            let pongs = Atomic<Int>(0)
            _ = try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/ws/log", logger: testLogger) {
                inbound, outbound, _ in
                try await outbound.write(.text("ping"))
                try await outbound.write(.text(#"{"type": "ping"}"#))
                for try await message in inbound.messages(maxSize: 1 << 16) {
                    guard case .text(let text) = message else { continue }
                    if text.contains(#""type":"pong""#) { pongs.add(1, ordering: .relaxed) }
                    if pongs.load(ordering: .relaxed) == 2 { break }
                }
                try await outbound.close(.normalClosure, reason: nil)
            }
            #expect(pongs.load(ordering: .relaxed) == 2)
        }
    }

    @Test("with auth on: no key or too low a role is closed with 1008 and why; an admin key opens it, however sent")
    func auth() async throws {
        try await Self.withLiveApp(configure: { $0.adminKey = AuthTests.root }) { _, _, port in
            let missing = try await RawWebSocket.refusal(port: port, path: LogSocket.path)
            #expect(missing.status.contains(" 101 "), "\(missing.status)")
            #expect(missing.close?.code == 1008)
            #expect(missing.close?.reason == "Missing API key: send it in the X-API-Key header")
            let wrong = try await RawWebSocket.refusal(port: port, path: LogSocket.path, headers: ["X-API-Key": "nope"])
            #expect(wrong.close?.code == 1008 && wrong.close?.reason == "Invalid API key")
            // A viewer may read the read models, not the raw log.
            let viewer = try await HTTPClientForTests(port: port).issueKey(
                "watcher", role: "viewer", adminKey: AuthTests.root)
            let low = try await RawWebSocket.refusal(port: port, path: LogSocket.path, headers: ["X-API-Key": viewer])
            #expect(low.close?.code == 1008)
            #expect(low.close?.reason == "API key 'watcher' (role viewer) may not GET /ws/log")
            for (query, headers) in [
                ("api_key=\(AuthTests.root)", HTTPFields()),
                ("", [HTTPField.Name("Sec-WebSocket-Protocol")!: "vigil, api-key.\(AuthTests.root)"]),
            ] {
                let received = Received()
                try await Self.follow(port: port, query, headers: headers, into: received) { !$0.all.isEmpty }
                #expect(received.all.first?["type"] as? String == "subscribed", "\(query) \(headers)")
            }
        }
    }

    @Test("a key revoked while its sockets are open closes them with 1008 and why, /ws/log and /ws/system alike")
    func revokedKeyClosesItsSockets() async throws {
        try await Self.withLiveApp(configure: {
            $0.adminKey = AuthTests.root
            $0.keyUsageInterval = .milliseconds(100)
        }) { _, _, port in
            let http = HTTPClientForTests(port: port)
            let key = try await http.issueKey("tail", role: "admin", adminKey: AuthTests.root)
            async let log = RawWebSocket.refusal(port: port, path: LogSocket.path, headers: ["X-API-Key": key])
            async let system = RawWebSocket.refusal(
                port: port, path: EventsSocket.systemPath, headers: ["X-API-Key": key])
            // Both handshakes have passed the key's check once its use shows them.
            try await waitUntil("both sockets were let in") {
                try await http.keyUsage("tail", adminKey: AuthTests.root)["requests"] as? Int == 2
            }
            let (status, _) = try await BodyLimitTests.send(
                .DELETE, port: port, "/api/api-keys/tail", contentType: "application/json",
                headers: [("X-API-Key", AuthTests.root)], body: .bytes(.init()))
            #expect(status == 204)
            for answer in [try await log, try await system] {
                #expect(answer.frames > 1, "a message before the close: the socket was open before the revocation")
                #expect(answer.close?.code == 1008)
                #expect(answer.close?.reason == "API key revoked or expired")
            }
        }
    }

    @Test("a checkpoint the log did not hand out is refused in /api/log's words, with 1008")
    func badCheckpoints() async throws {
        try await Self.withLiveApp { _, _, port in
            for (after, reason) in [
                ("zzz", "Invalid checkpoint"), ("7fffffffffffffff0000000000000001", "Checkpoint not readable yet"),
                // NUL in the query: once Hummingbird's empty 400, which a browser can't read.
                ("00%00", "Invalid query parameter 'after': Value error, NUL"),
                ("&types=A%00", "Invalid query parameter 'types': Value error, NUL"),
            ] {
                let refused = try await RawWebSocket.refusal(port: port, path: "\(LogSocket.path)?after=\(after)")
                #expect(refused.close?.code == 1008, "\(after)")
                #expect(
                    refused.close?.reason.hasPrefix(reason) == true, "\(after): \(String(describing: refused.close))")
                // A close frame carries at most 125 bytes, two of them the code (RFC 6455 §5.5);
                // the checkpoint's words are 257 bytes, sent cut.
                #expect((refused.close?.reason.utf8.count ?? .max) <= 123, "\(after)")
            }
        }
    }

    @Test("two server instances on one database: an event appended through one reaches the other's sockets")
    func twoInstances() async throws {
        try await withScratchDatabase { store, scratch in
            let configuration = testConfiguration(scratch, live: true)
            try await testApplication(configuration, .live) { first in
                try await testApplication(configuration, .live) { second in
                    let port = try #require(second.port)
                    let received = Received()
                    async let followed = Self.follow(port: port, "stream_prefix=camera-", into: received) {
                        $0.events.count >= 1
                    }
                    try await waitUntil("subscribed") { received.all.first?["type"] as? String == "subscribed" }
                    let (status, answer) = try await BodyLimitTests.send(
                        .POST, port: try #require(first.port), "/api/cameras", contentType: "application/json",
                        body: .bytes(.init(string: #"{"name": "Porch", "folder_path": "/cams/porch"}"#)))
                    #expect(status == 201, "\(answer)")
                    _ = try await followed
                    let event = try #require(received.all.first { $0["type"] as? String == "event" })
                    #expect((event["data"] as? [String: Any])?["type"] as? String == "CameraRegistered")
                    _ = store
                }
            }
        }
    }
}

/// Issues keys over a real socket (the live app's port).
struct HTTPClientForTests {
    let port: Int

    func issueKey(_ name: String, role: String, adminKey: String) async throws -> String {
        let (status, answer) = try await BodyLimitTests.send(
            .POST, port: port, "/api/api-keys", contentType: "application/json",
            headers: [("X-API-Key", adminKey)],
            body: .bytes(.init(string: #"{"name": "\#(name)", "role": "\#(role)"}"#)))
        #expect(status == 201, "\(answer)")
        return try #require(answer["key"] as? String)
    }

    /// `/api/api-keys/{name}`'s `usage` (`requests`, `refused`, `last_used_at`, `last_used_from`).
    func keyUsage(_ name: String, adminKey: String) async throws -> [String: Any] {
        let (_, item) = try await BodyLimitTests.send(
            .GET, port: port, "/api/api-keys/\(name)", contentType: "application/json",
            headers: [("X-API-Key", adminKey)], body: .bytes(.init()))
        return item["usage"] as? [String: Any] ?? [:]
    }
}
