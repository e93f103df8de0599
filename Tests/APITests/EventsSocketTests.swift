import Domain
import EventStore
import Foundation
import HTTPTypes
import HummingbirdTesting
import HummingbirdWSClient
import NIOWebSocket
import Testing
import VigilTesting

@testable import API

/// `/ws/events` over real sockets: the seeds' live feed, per channel.
@Suite struct EventsSocketTests {
    typealias Received = LogSocketTests.Received

    /// Runs `script` on a `/ws/events` socket while every text message it gets is collected;
    /// then closes. Bounded at two minutes.
    static func session(
        port: Int, _ query: String = "", headers: HTTPFields = [:],
        _ script: @escaping @Sendable (WebSocketOutboundWriter, Received) async throws -> Void
    ) async throws {
        let received = Received()
        var settings = WebSocketClientConfiguration()
        settings.additionalHeaders = headers
        let configuration = settings
        let outcome = await withDeadline(.seconds(120)) {
            try await WebSocketClient.connect(
                url: "ws://127.0.0.1:\(port)\(EventsSocket.path)?\(query)", configuration: configuration,
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
            Issue.record("the /ws/events session did not end in 120 s: \(received.all)")
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

    static func analyzedEvent(_ id: Int64, score: Int) -> [any DomainEvent] {
        [
            SecurityEventOpened(
                id: id, cameraId: "porch", batchId: "b\(id)", startedAt: Date(timeIntervalSince1970: 1_795_000_000),
                detectionIds: [1], objectTypes: ["person"]),
            SecurityEventAnalyzed(id: id, riskScore: score, summary: "Someone at the door", reasoning: "r"),
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
            let closed = try await LogSocketTests.follow(port: port, "", path: EventsSocket.path) { _ in false }
            #expect(closed?.closeCode == .normalClosure && closed?.reason == "Idle")
            let refused = try await RawWebSocket.refusal(
                port: port, path: "\(EventsSocket.path)?channels=events,weather")
            #expect(refused.close?.code == 1008)
            #expect(
                refused.close?.reason.hasPrefix("Unknown channel 'weather'") == true,
                "\(String(describing: refused.close))")
        }
    }

    @Test("with auth on, a viewer may follow the feed; no key is closed with 1008")
    func auth() async throws {
        try await LogSocketTests.withLiveApp(configure: { $0.adminKey = AuthTests.root }) { _, _, port in
            let missing = try await RawWebSocket.refusal(port: port, path: EventsSocket.path)
            #expect(missing.close?.code == 1008)
            let viewer = try await HTTPClientForTests(port: port).issueKey(
                "dashboard", role: "viewer", adminKey: AuthTests.root)
            try await Self.session(port: port, headers: [HTTPField.Name("X-API-Key")!: viewer]) { outbound, received in
                _ = try await Self.ask("ping", expecting: "pong", outbound, received)
            }
        }
    }
}
