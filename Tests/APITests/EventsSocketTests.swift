import AsyncHTTPClient
import Domain
import EventStore
import Foundation
import HTTPTypes
import HummingbirdTesting
import HummingbirdWSClient
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Redis
import Testing
import VigilTesting

@testable import API

/// `/ws/events` over real sockets: the seeds' live feed, per channel.
@Suite struct EventsSocketTests {
    typealias Received = LogSocketTests.Received

    /// Runs `script` on a `/ws/events` socket while every text message it gets is collected;
    /// then closes. Bounded at two minutes.
    static func session(
        port: Int, path: String = EventsSocket.eventsPath, _ query: String = "", headers: HTTPFields = [:],
        _ script: @escaping @Sendable (WebSocketOutboundWriter, Received) async throws -> Void
    ) async throws {
        let received = Received()
        var settings = WebSocketClientConfiguration()
        settings.additionalHeaders = headers
        let configuration = settings
        let outcome = await withDeadline(.seconds(120)) {
            try await WebSocketClient.connect(
                url: "ws://127.0.0.1:\(port)\(path)?\(query)", configuration: configuration,
                logger: testLogger
            ) { inbound, outbound, _ in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await message in inbound.messages(maxSize: 1 << 20) {
                            if case .text(let text) = message { received.append(text) }
                        }
                    }
                    try await script(outbound, received)
                    try await outbound.close(.normalClosure, reason: nil)
                    group.cancelAll()
                }
            }
        }
        guard let outcome else {
            // With the application's last records: what held the feed (seen once in a whole
            // tools/test run, never alone).
            let records = RecentLogs.current?.text ?? "(none)"
            Issue.record(
                "the \(path) session did not end in 120 s: \(received.all)\nthe application's last log records:\n\(records)"
            )
            return
        }
        _ = try outcome.get()
    }

    /// Sends `message` and waits for the answer of `type` after it.
    static func ask(
        _ message: String, expecting type: String, _ outbound: WebSocketOutboundWriter, _ received: Received
    ) async throws -> [String: Any] {
        let before = received.count
        try await outbound.write(.text(message))
        var answer: [String: Any] = [:]
        try await waitUntil("an answer of type \(type) to \(message)") {
            guard let found = received.all.dropFirst(before).first(where: { $0["type"] as? String == type }) else {
                return false
            }
            answer = found
            return true
        }
        return answer
    }

    static func append(_ store: EventStore, _ events: [any DomainEvent]) async throws {
        for event in events {
            try await store.append(
                to: event.stream, events: [try NewEvent(event, metadata: EventMetadata(actor: "tests"))])
        }
    }

    static func detection(_ id: Int64, at seconds: Double) -> DetectionRecorded {
        DetectionRecorded(
            id: id, cameraId: "porch", filePath: "/cams/porch/\(id).jpg", fileType: "image/jpeg",
            detectedAt: Date(timeIntervalSince1970: 1_795_000_000 + seconds), objectType: "person", confidence: 0.9,
            bboxX: 1, bboxY: 2, bboxWidth: 3, bboxHeight: 4)
    }

    static func camera(_ id: String, _ status: CameraStatus) -> CameraRegistered {
        CameraRegistered(
            id: id, name: id.capitalized, folderPath: "/export/\(id)", status: status,
            registeredAt: Date(timeIntervalSince1970: 1_795_000_000))
    }

    static func analyzedEvent(_ id: Int64, score: Int) -> [any DomainEvent] {
        [
            SecurityEventOpened(
                id: id, cameraId: "porch", batchId: "b\(id)", startedAt: Date(timeIntervalSince1970: 1_795_000_000),
                detectionIds: [1], objectTypes: ["person"]),
            SecurityEventAnalyzed(id: id, riskScore: score, summary: "Someone at the door", reasoning: "r"),
        ]
    }

    /// An alert's life: raised, delivered, acknowledged, dismissed.
    static func alert(_ start: Date) -> [any DomainEvent] {
        let id = Alert.id(rule: "r1", event: 7)
        return [
            AlertTriggered(
                id: id, eventId: 7, ruleId: "r1", ruleName: "person", severity: .high, channels: ["webhook"],
                dedupKey: "porch:r1", cameraId: "porch", riskScore: 40, objectTypes: ["person"],
                summary: "Someone at the door", createdAt: start.addingTimeInterval(4)),
            AlertDeliveryFailed(
                id: id, channel: "webhook", target: "http://127.0.0.1:9/a", attempts: 5, error: "HTTP 503",
                failedAt: start.addingTimeInterval(5)),
            AlertDelivered(
                id: id, channel: "webhook", target: "http://127.0.0.1:9/b", attempts: 1,
                deliveredAt: start.addingTimeInterval(5)),
            AlertDeliverySuppressed(
                id: id, channel: "webhook", target: "http://127.0.0.1:9/c", reason: "quiet hours: night",
                suppressedAt: start.addingTimeInterval(5)),
            AlertAcknowledged(id: id, previousStatus: .delivered, acknowledgedAt: start.addingTimeInterval(6)),
            AlertDismissed(id: id, previousStatus: .acknowledged, dismissedAt: start.addingTimeInterval(7)),
        ]
    }

    @Test("events arrive on `events` with their level; detections only once subscribed; unsubscribing stops them")
    func channelsFilter() async throws {
        try await LogSocketTests.withLiveApp { store, _, port in
            try await Self.session(port: port) { outbound, received in
                let subscribed = try await Self.ask(
                    #"{"type": "subscribe", "channels": ["events"]}"#, expecting: "subscribed", outbound, received)
                #expect(subscribed["channels"] as? [String] == ["events"])
                try await Self.append(store, [Self.detection(1, at: 0)] + Self.analyzedEvent(7, score: 90))
                try await waitUntil("the analyzed event arrives") {
                    received.all.contains { $0["type"] as? String == "event" }
                }
                let event = try #require(
                    received.all.first { $0["type"] as? String == "event" }?["data"] as? [String: Any])
                #expect(
                    event["id"] as? Int == 7 && event["event_id"] as? Int == 7 && event["batch_id"] as? String == "b7")
                #expect(event["camera_id"] as? String == "porch" && event["risk_score"] as? Int == 90)
                #expect(
                    event["risk_level"] as? String == "critical" && event["summary"] as? String == "Someone at the door"
                )
                #expect(event["started_at"] as? String == "2026-11-18T11:06:40.000Z")
                #expect(
                    !received.all.contains { $0["type"] as? String == "detection.new" }, "not subscribed to detections")

                let both = try await Self.ask(
                    #"{"type": "subscribe", "channels": ["detections"]}"#, expecting: "subscribed", outbound, received)
                #expect(both["channels"] as? [String] == ["detections", "events"])
                let only = try await Self.ask(
                    #"{"type": "unsubscribe", "channels": ["events"]}"#, expecting: "subscribed", outbound, received)
                #expect(only["channels"] as? [String] == ["detections"])
                try await Self.append(store, Self.analyzedEvent(8, score: 10) + [Self.detection(2, at: 60)])
                try await waitUntil("the detection arrives") {
                    received.all.contains { $0["type"] as? String == "detection.new" }
                }
                let detection = try #require(
                    received.all.first { $0["type"] as? String == "detection.new" }?["data"] as? [String: Any])
                #expect(detection["id"] as? Int == 2 && detection["camera_id"] as? String == "porch")
                #expect(detection["object_type"] as? String == "person" && detection["confidence"] as? Double == 0.9)
                // Event 8 was analyzed before that detection, after `events` was left.
                #expect(received.all.filter { $0["type"] as? String == "event" }.count == 1)
            }
        }
    }

    @Test("bad messages get the contract's error codes and leave the socket open")
    func errors() async throws {
        try await LogSocketTests.withLiveApp { _, _, port in
            try await Self.session(port: port) { outbound, received in
                for (message, code) in [
                    ("{", "invalid_json"), ("[1]", "invalid_message_format"),
                    (#"{"type": 3}"#, "invalid_message_format"),
                    (#"{"type": "dance"}"#, "unknown_message_type"),
                    (#"{"type": "subscribe", "channels": "events"}"#, "invalid_message_format"),
                    (#"{"type": "subscribe", "channels": ["events", "weather"]}"#, "validation_error"),
                ] {
                    let error = try await Self.ask(message, expecting: "error", outbound, received)
                    #expect(error["error"] as? String == code, "\(message)")
                    #expect((error["message"] as? String)?.isEmpty == false, "\(message)")
                }
                let unknown = received.all.last { $0["error"] as? String == "validation_error" }
                #expect((unknown?["details"] as? [String: Any])?["unknown_channels"] as? [String] == ["weather"])
                // Still open, and nothing was subscribed by the refused message.
                _ = try await Self.ask("ping", expecting: "pong", outbound, received)
                let now = try await Self.ask(
                    #"{"type": "unsubscribe", "channels": []}"#, expecting: "subscribed", outbound, received)
                #expect(now["channels"] as? [String] == ["events"])
            }
        }
    }

    @Test(
        "a silent client is closed with 1000 after the idle timeout; an unknown channel in the query closes with 1008")
    func idleAndQuery() async throws {
        try await LogSocketTests.withLiveApp(configure: { $0.webSocketIdleTimeout = .seconds(1) }) { _, _, port in
            let closed = try await LogSocketTests.follow(port: port, "", path: EventsSocket.eventsPath) { _ in false }
            #expect(closed?.closeCode == .normalClosure && closed?.reason == "Idle")
            let refused = try await RawWebSocket.refusal(
                port: port, path: "\(EventsSocket.eventsPath)?channels=events,weather")
            #expect(refused.close?.code == 1008)
            #expect(
                refused.close?.reason.hasPrefix("Unknown channel 'weather'") == true,
                "\(String(describing: refused.close))")
            for path in ["\(EventsSocket.eventsPath)?channels=%00", "\(EventsSocket.systemPath)?x=%00"] {
                let nul = try await RawWebSocket.refusal(port: port, path: path)
                #expect(nul.close?.code == 1008, "\(path)")
                #expect(
                    nul.close?.reason.hasPrefix("Invalid query parameter") == true,
                    "\(path): \(String(describing: nul.close))")
            }
            // A long unknown name: the reason is cut to what a close frame holds, at a character.
            let long = try await RawWebSocket.refusal(
                port: port, path: "\(EventsSocket.eventsPath)?channels=" + String(repeating: "%C3%A9", count: 150))
            let reason = try #require(long.close?.reason)
            #expect(long.close?.code == 1008)
            #expect(
                reason.utf8.count <= 123 && reason.hasPrefix("Unknown channel 'éé") && reason.hasSuffix("…"),
                "\(reason)")
        }
    }

    @Test("a /ws/ route asked without an upgrade says it is one (400), and other methods get 405")
    func plainRequests() async throws {
        try await withApp { _, client in
            for path in [LogSocket.path, EventsSocket.eventsPath, EventsSocket.systemPath] {
                let plain = try await client.execute(uri: path, method: .get)
                #expect(plain.status == .badRequest, "\(path)")
                #expect(
                    try json(plain)["detail"] as? String
                        == "\(path) is a WebSocket route: open it with an upgrade request (Upgrade: websocket)")
                let post = try await client.execute(uri: path, method: .post)
                #expect(post.status == .methodNotAllowed && post.headers[.allow] == "GET, HEAD", "\(path)")
            }
        }
    }

    @Test("with auth on, a viewer may follow the feed; no key is closed with 1008; the key's use is recorded")
    func auth() async throws {
        try await LogSocketTests.withLiveApp(configure: {
            $0.adminKey = AuthTests.root
            $0.keyUsageInterval = .milliseconds(100)
        }) { _, _, port in
            let missing = try await RawWebSocket.refusal(port: port, path: EventsSocket.eventsPath)
            #expect(missing.close?.code == 1008)
            let http = HTTPClientForTests(port: port)
            let viewer = try await http.issueKey("dashboard", role: "viewer", adminKey: AuthTests.root)
            try await Self.session(port: port, headers: [HTTPField.Name("X-API-Key")!: viewer]) { outbound, received in
                _ = try await Self.ask("ping", expecting: "pong", outbound, received)
            }
            // With the address it came from, as a request's use is (it once erased it).
            try await waitUntil("the socket's use is saved, with its address") {
                let usage = try await http.keyUsage("dashboard", adminKey: AuthTests.root)
                return usage["requests"] as? Int == 1 && usage["last_used_from"] as? String == "127.0.0.1"
            }
        }
    }

    @Test("/ws/system: the status at once, then every interval, with cameras, the queue and health")
    func systemStatus() async throws {
        let prefix = PipelineTests.prefix()
        try await LogSocketTests.withLiveApp(configure: {
            $0.systemStatusInterval = .seconds(1)
            $0.redis = sharedRedisSettings()
            $0.redisPrefix = prefix
            $0.runHeuristicAnalyzer = false
        }) { store, _, port in
            let redis = try PipelineTests.redis()
            defer { redis.shutdown() }
            _ = try await redis.rpush(prefix + "analysis_queue", ["job-1", "job-2"])
            _ = try await redis.rpush(prefix + "analysis_queue:processing", ["job-3"])
            let statuses = Self.statuses
            try await Self.session(port: port, path: EventsSocket.systemPath) { outbound, received in
                try await waitUntil("the first status") { !statuses(received).isEmpty }
                let first = try #require(statuses(received).first)
                let gpu = try #require(first["gpu"] as? [String: Any])
                #expect(Set(gpu.keys) == Set(SystemStatusFeed.gpuFields) && gpu.values.allSatisfy { $0 is NSNull })
                #expect(first["queue"] as? [String: Int] == ["pending": 2, "processing": 1], "\(first)")
                #expect(first["cameras"] as? [String: Int] == ["active": 0, "total": 0], "\(first)")
                let message = try #require(received.all.first { $0["type"] as? String == "system_status" })
                #expect((message["timestamp"] as? String)?.hasSuffix("Z") == true)

                // Two cameras registered, one of them offline: the next statuses count them.
                try await Self.append(store, [Self.camera("porch", .online), Self.camera("shed", .offline)])
                try await waitUntil("a status that counts the cameras and is healthy") {
                    statuses(received).contains {
                        $0["cameras"] as? [String: Int] == ["active": 1, "total": 2]
                            && $0["health"] as? String == "healthy"
                    }
                }
                let healthy = try #require(statuses(received).last)
                let projections = try #require(healthy["projections"] as? [String: Any])
                #expect(projections["unhealthy"] as? [String] == [], "\(healthy)")
                #expect(projections["lag_events"] is Int, "\(healthy)")

                // The feeds' health counts this socket.
                let (status, health) = try await BodyLimitTests.send(
                    .GET, port: port, "/api/system/health/websocket", contentType: "application/json",
                    body: .bytes(ByteBuffer()))
                #expect(status == 200, "\(health)")
                let system = health["system_broadcaster"] as? [String: Any]
                #expect(system?["sockets"] as? Int == 1 && system?["interval_seconds"] as? Int == 1, "\(health)")
                let tail = health["event_broadcaster"] as? [String: Any]
                #expect(tail?["state"] as? String == "closed" && tail?["failures"] as? Int == 0, "\(health)")
                #expect((tail?["position"] as? String)?.count == 32, "\(health)")
                #expect((health["events_feed"] as? [String: Any])?["sockets"] as? Int == 1, "\(health)")

                // Only ping here: the channel is fixed.
                let refused = try await Self.ask(
                    #"{"type": "subscribe", "channels": ["events"]}"#, expecting: "error", outbound, received)
                #expect(refused["error"] as? String == "unknown_message_type")
                _ = try await Self.ask(#"{"type": "ping"}"#, expecting: "pong", outbound, received)
            }

            // The same status on the `system` channel of /ws/events, once subscribed.
            try await Self.session(port: port) { outbound, received in
                _ = try await Self.ask(
                    #"{"type": "subscribe", "channels": ["system"]}"#, expecting: "subscribed", outbound, received)
                try await waitUntil("a status on /ws/events") { !statuses(received).isEmpty }
                #expect(statuses(received).last?["cameras"] as? [String: Int] == ["active": 1, "total": 2])
            }
            _ = try await redis.del([prefix + "analysis_queue", prefix + "analysis_queue:processing"])
        }
    }

    /// The `data` of every `system_status` message received so far.
    @Sendable static func statuses(_ received: Received) -> [[String: Any]] {
        received.all.filter { $0["type"] as? String == "system_status" }.compactMap { $0["data"] as? [String: Any] }
    }

    @Test("the websocket rate-limit tier: new sockets over the limit are closed with 1008 and why, and audited")
    func rateLimited() async throws {
        // A long window: on a starved machine sockets can be seconds apart, and none may leave
        // the window before the third comes.
        try await LogSocketTests.withLiveApp(
            configure: RateLimitTests.configure(sharedRedisSettings(), window: .seconds(600))
        ) {
            store, _, port in
            let (status, answer) = try await BodyLimitTests.send(
                .PATCH, port: port, "/api/system/rate-limits", contentType: "application/json",
                body: .bytes(ByteBuffer(string: #"{"enabled": true, "websocket": 2}"#)))
            #expect(status == 200 && answer["websocket"] as? Int == 2, "\(answer)")
            // The limiter reads the settings at most once a second: wait until an HTTP answer
            // carries the limits (it then counts sockets too). Seen once in a clean clone: 30
            // sockets, none refused, when the sockets began before the limits were read.
            try await waitUntil("the limits apply") {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/cameras")
                request.headers.add(name: "Connection", value: "close")
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
                _ = try await response.body.collect(upTo: 1 << 20)
                return response.headers.first(name: "X-RateLimit-Limit") != nil
            }
            var refusal: RawWebSocket.Answer?
            for _ in 0..<30 where refusal == nil {
                let answer = try await RawWebSocket.refusal(port: port, path: EventsSocket.systemPath, firstFrame: true)
                if answer.close?.code == 1008 { refusal = answer }
            }
            let refused = try #require(
                refusal,
                "no socket refused in 30 at 2 per window; last log records:\n\(RecentLogs.current?.text ?? "")")
            #expect(refused.status.contains("101"), "\(refused.status)")
            #expect(
                refused.close?.reason.hasPrefix("Rate limit exceeded: 2 new connections per window") == true,
                "\(String(describing: refused.close))")
            let rejected = try await store.readAll().filter { $0.type == CommandRejected.type }
                .map { try CommandRejected.decode($0.data) }
            #expect(rejected.contains { $0.action == "rate_limit_exceeded" && $0.resourceType == "websocket" })
        }
    }
}
