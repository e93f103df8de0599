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

/// The message registry (`GET /api/system/websocket/events`) against what the feeds really send.
extension EventsSocketTests {
    /// The registry (`GET /api/system/websocket/events`), by message type.
    static func registry(port: Int) async throws -> (answer: [String: Any], types: [String: [String: Any]]) {
        let (status, answer) = try await BodyLimitTests.send(
            .GET, port: port, "/api/system/websocket/events", contentType: "application/json",
            body: .bytes(ByteBuffer()))
        #expect(status == 200, "\(answer)")
        let types = try #require(answer["event_types"] as? [[String: Any]], "\(answer)")
        return (answer, Dictionary(types.map { ($0["type"] as? String ?? "", $0) }) { first, _ in first })
    }

    /// The fields a registry entry's schema requires, and those it names.
    struct Fields: Sendable {
        var required: Set<String>
        var named: Set<String>

        init(_ entry: [String: Any]) {
            let schema = entry["payload_schema"] as? [String: Any] ?? [:]
            required = Set(schema["required"] as? [String] ?? [])
            named = Set((schema["properties"] as? [String: Any] ?? [:]).keys)
        }
    }

    /// Why `data` doesn't match a schema's fields (nil: it does): every required field there,
    /// none the schema doesn't name.
    static func mismatch(_ data: [String: Any], _ schema: Fields) -> String? {
        let (fields, required, named) = (Set(data.keys), schema.required, schema.named)
        if !required.isSubset(of: fields) { return "lacks \(required.subtracting(fields).sorted())" }
        if !fields.isSubset(of: named) {
            return "has fields its schema does not name: \(fields.subtracting(named).sorted())"
        }
        return nil
    }

    @Test("every message type the feeds send is in the registry, on its channel, with the fields its schema names")
    func registryMatchesTheFeed() async throws {
        try await LogSocketTests.withLiveApp(configure: { $0.systemStatusInterval = .seconds(1) }) { store, _, port in
            let (answer, registry) = try await Self.registry(port: port)
            #expect(answer["channels"] as? [String] == ["detections", "events", "alerts", "cameras", "jobs", "system"])
            #expect(answer["total_count"] as? Int == registry.count && answer["deprecated_count"] as? Int == 0)
            for (type, entry) in registry {
                let example = entry["example"] as? [String: Any] ?? [:]
                #expect(Self.mismatch(example, Fields(entry)) == nil, "\(type)'s example")
            }
            let schemas = registry.mapValues(Fields.init)
            let channels = registry.mapValues { $0["channel"] as? String ?? "" }
            try await Self.session(port: port, "channels=detections,events,alerts,cameras,jobs,system") {
                _, received in
                let start = Date(timeIntervalSince1970: 1_795_000_000)
                try await Self.append(
                    store,
                    [
                        Self.camera("porch", .online),
                        CameraUpdated(id: "porch", status: .offline, updatedAt: start.addingTimeInterval(1)),
                        Self.detection(1, at: 2),
                    ] + Self.analyzedEvent(7, score: 40) + [
                        ReanalysisRequested(id: 7, reason: "thresholds changed"),
                        CameraRemoved(id: "porch", removedAt: start.addingTimeInterval(3)),
                    ] + Self.alert(start))
                let expected: Set<String> = [
                    "camera.registered", "camera.updated", "detection.new", "event", "job.queued", "camera.removed",
                    "system_status", "alert.created", "alert.delivered", "alert.delivery_failed", "alert.acknowledged",
                    "alert.dismissed", "alert.delivery_suppressed",
                ]
                try await waitUntil("a message of every type") {
                    expected.isSubset(of: Set(received.all.compactMap { $0["type"] as? String }))
                }
                #expect(Set(schemas.keys) == expected, "the registry lists what the feeds send, and only that")
                for message in received.all {
                    let type = message["type"] as? String ?? "?"
                    let schema = try #require(schemas[type], "\(type) is not in the registry")
                    let data = try #require(message["data"] as? [String: Any], "\(message)")
                    #expect(Self.mismatch(data, schema) == nil, "\(type): \(Self.mismatch(data, schema) ?? "")")
                }
                #expect(channels["event"] == "events" && channels["job.queued"] == "jobs")
                #expect(channels["detection.new"] == "detections" && channels["system_status"] == "system")
                #expect(channels["camera.removed"] == "cameras")
                #expect(channels["alert.created"] == "alerts" && channels["alert.dismissed"] == "alerts")
            }
        }
    }
}
