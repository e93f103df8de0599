import API
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Projections
import Synchronization
import Testing
import VigilTesting

/// The rule engine (analyses in, `AlertTriggered` out) and `/api/alerts`: through the real
/// router, the real aggregator and the real runners.
@Suite struct AlertsTests {
    /// A fast-path person (an event of its own at once), centred at (0.16, 0.22) of its frame.
    static let person = IngestAPITests.detection(
        camera: "front_door", object: "person", confidence: 0.95, extra: #", "video_width": 100, "video_height": 100"#)

    /// Posts `detection` (a fast-path person) and waits until it is the `count`th security
    /// event; returns the newest event's id.
    static func event(_ client: any TestClientProtocol, count: Int, detection: String = person) async throws -> Int {
        #expect(try await client.send(.post, "/api/detections", json: detection).status == .created)
        var newest = 0
        try await waitUntil("security event \(count)") {
            let events = try await client.getJSON("/api/events?limit=100")["events"] as? [[String: Any]] ?? []
            newest = events.compactMap { $0["id"] as? Int }.max() ?? 0
            return events.count == count
        }
        return newest
    }

    static func analyse(_ client: any TestClientProtocol, _ id: Int, score: Int) async throws {
        let response = try await client.send(
            .post, "/api/events/\(id)/analysis", json: #"{"risk_score": \#(score), "summary": "someone at the door"}"#)
        #expect(response.status == .created, "\(String(buffer: response.body))")
    }

    static func rule(_ client: any TestClientProtocol, _ body: String) async throws -> String {
        let response = try await client.send(.post, "/api/alerts/rules", json: body)
        #expect(response.status == .created, "\(String(buffer: response.body))")
        return try #require(try json(response)["id"] as? String)
    }

    /// Waits until the rule engine has applied the whole log, then the alerts read model what
    /// the engine appended.
    static func settle(_ store: EventStore) async throws {
        let engine = try await store.waitForProjections(
            ["alert_engine"], toReach: try await store.head(), timeout: .seconds(60))
        let settled =
            try await store.waitForProjections(["alerts"], toReach: try await store.head(), timeout: .seconds(60))
            && engine
        let statuses = try await store.projectionStatuses().filter { $0.name.hasPrefix("alert") }
        #expect(settled, "\(statuses)")
    }

    static func alerts(_ client: any TestClientProtocol, _ query: String = "") async throws -> [[String: Any]] {
        try #require(try await client.getJSON("/api/alerts?limit=100\(query)")["alerts"] as? [[String: Any]])
    }

    @Test("Rules fire once per event and per cooldown, by their conditions and zones, across rebuild and restart")
    func rulesFire() async throws {
        try await withScratchDatabase { store, database in
            let listed = Mutex<[String]>([])
            try await runApp(on: database) { client in
                try await IngestAPITests.register(client, "front_door")
                let near = try await client.send(
                    .post, "/api/cameras/front_door/zones",
                    json:
                        #"{"name": "porch", "zone_type": "entry_point", "shape": "rectangle", "coordinates": [[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5]]}"#
                )
                #expect(near.status == .created, "\(String(buffer: near.body))")
                let nearId = try #require(try json(near)["id"] as? String)
                let far = try await client.send(
                    .post, "/api/cameras/front_door/zones",
                    json:
                        #"{"name": "gate", "zone_type": "entry_point", "shape": "polygon", "coordinates": [[0.6, 0.6], [0.9, 0.6], [0.8, 0.9]]}"#
                )
                let farId = try #require(try json(far)["id"] as? String)
                // A: a person in the porch zone at 60 or more, once per 5 minutes per camera.
                let ruleA = try await Self.rule(
                    client,
                    #"{"name": "person at the door", "severity": "high", "risk_threshold": 60, "object_types": ["person"], "camera_ids": ["front_door"], "zone_ids": ["\#(nearId)"], "cooldown_seconds": 300}"#
                )
                // B: anything at 85 or more, every event (no cooldown, a key per event).
                let ruleB = try await Self.rule(
                    client,
                    #"{"name": "very high", "severity": "critical", "risk_threshold": 85, "cooldown_seconds": 0, "dedup_key_template": "{event_id}"}"#
                )
                // Never: the zone far from the person, a car, a disabled rule, another camera.
                for json in [
                    #"{"name": "gate", "zone_ids": ["\#(farId)"]}"#, #"{"name": "car", "object_types": ["car"]}"#,
                    #"{"name": "off", "enabled": false}"#, #"{"name": "garage", "camera_ids": ["garage"]}"#,
                ] {
                    _ = try await Self.rule(client, json)
                }

                let first = try await Self.event(client, count: 1)
                try await Self.analyse(client, first, score: 70)  // A
                let second = try await Self.event(client, count: 2)
                try await Self.analyse(client, second, score: 90)  // B (A is cooling down)
                try await Self.analyse(client, second, score: 95)  // a reanalysis: nothing again
                let third = try await Self.event(client, count: 3)
                try await Self.analyse(client, third, score: 40)  // nothing
                try await Self.settle(store)

                let alerts = try await Self.alerts(client)
                #expect(alerts.count == 2, "\(alerts)")
                let a = try #require(alerts.first { $0["rule_id"] as? String == ruleA })
                #expect(a["event_id"] as? Int == first)
                #expect(a["status"] as? String == "pending")
                #expect(a["severity"] as? String == "high")
                #expect(a["dedup_key"] as? String == "front_door:\(ruleA)")
                #expect(a["id"] as? String == Alert.id(rule: ruleA, event: Int64(first)))
                let metadata = try #require(a["metadata"] as? [String: Any])
                #expect(metadata["risk_score"] as? Int == 70)
                #expect(metadata["object_types"] as? [String] == ["person"])
                #expect(a["acknowledged_at"] is NSNull && a["delivered_at"] is NSNull)
                let b = try #require(alerts.first { $0["rule_id"] as? String == ruleB })
                #expect(b["event_id"] as? Int == second)
                #expect(b["dedup_key"] as? String == String(second))
                #expect((b["metadata"] as? [String: Any])?["risk_score"] as? Int == 90)
                #expect(try await Self.alerts(client, "&rule_id=\(ruleB)").count == 1)
                #expect(try await Self.alerts(client, "&severity=critical").count == 1)
                #expect(try await Self.alerts(client, "&event_id=\(first)").count == 1)
                #expect(try await Self.alerts(client, "&status=acknowledged").isEmpty)

                // Rules apply where they stand in the log: A disabled, then a fourth event at 99
                // fires B only.
                let disabled = try await client.send(
                    .put, "/api/alerts/rules/\(ruleA)", json: #"{"cooldown_seconds": 0, "enabled": false}"#)
                #expect(disabled.status == .ok)
                let fourth = try await Self.event(client, count: 4)
                try await Self.analyse(client, fourth, score: 99)
                try await Self.settle(store)
                #expect(try await Self.alerts(client).map { $0["rule_id"] as? String } == [ruleB, ruleB, ruleA])

                // A rebuild of the read model shows the same alerts.
                let before = try await Self.alerts(client).map { String(describing: $0["id"]!) }
                listed.withLock { $0 = before }
                #expect(try await client.send(.post, "/api/projections/alerts/rebuild").status == .accepted)
                try await waitUntil("the rebuilt alerts are live") {
                    let statuses =
                        try await client.getJSON("/api/projections")["projections"] as? [[String: Any]] ?? []
                    let alerts = statuses.first { $0["name"] as? String == "alerts" }
                    return alerts?["generation"] as? Int == 2 && alerts?["rebuild"] is NSNull
                }
                #expect(try await Self.alerts(client).map { String(describing: $0["id"]!) } == before)
            }
            // A restarted server decides nothing again.
            try await runApp(on: database) { client in
                try await Self.settle(store)
                let before = listed.withLock { $0 }
                #expect(before.count == 3)
                #expect(try await Self.alerts(client).map { String(describing: $0["id"]!) } == before)
                #expect(try await IngestAPITests.count(store, type: AlertTriggered.type) == 3)
            }
        }
    }

    @Test("A camera id of 255 letters reaches the rule engine, whose key names it 18 times and cools down")
    func longCameraIdsAndKeys() async throws {
        try await withApp { store, client in
            // 255 letters (the longest id): the id is the name, 765 bytes of UTF-8; filled in 18
            // times, the key is 13.8 kB, which PostgreSQL compresses into the cooldowns' index.
            let camera = String(
                (0..<Camera.maxIDLength).map { Character(Unicode.Scalar(0x4E00 + ($0 * 7919) % 20_000)!) })
            try await IngestAPITests.register(client, camera)
            let template = String(repeating: "{camera_id}", count: 18)
            _ = try await Self.rule(
                client, #"{"name": "long", "cooldown_seconds": 3600, "dedup_key_template": "\#(template)"}"#)
            let detection = IngestAPITests.detection(
                camera: camera, object: "person", confidence: 0.95, extra: #", "video_width": 100, "video_height": 100"#
            )
            for count in 1...2 {
                try await Self.analyse(
                    client, try await Self.event(client, count: count, detection: detection), score: 50)
            }
            try await Self.settle(store)
            let alerts = try await Self.alerts(client)
            #expect(alerts.count == 1, "the second event falls in the first one's cooldown: \(alerts.count)")
            #expect(alerts.first?["dedup_key"] as? String == String(repeating: camera, count: 18))
            let engine = try await store.projectionStatuses().first { $0.name == "alert_engine" }
            #expect(engine?.health == "ok" && engine?.parkedEvents == 0, "\(String(describing: engine))")
        }
    }

    @Test("Acknowledge from pending or delivered, dismiss from all but dismissed, else 409; audited")
    func statusChanges() async throws {
        try await withApp { store, client in
            try await IngestAPITests.register(client, "front_door")
            _ = try await Self.rule(
                client, #"{"name": "all", "cooldown_seconds": 0, "dedup_key_template": "{event_id}"}"#)
            for count in 1...2 {
                try await Self.analyse(client, try await Self.event(client, count: count), score: 50)
            }
            try await Self.settle(store)
            let ids = try await Self.alerts(client).compactMap { $0["id"] as? String }
            try #require(ids.count == 2)
            let (one, two) = (ids[0], ids[1])

            let acknowledged = try await client.send(.post, "/api/alerts/\(one)/acknowledge")
            #expect(acknowledged.status == .ok)
            let body = try json(acknowledged)
            #expect(body["status"] as? String == "acknowledged")
            #expect(body["acknowledged_at"] is String)
            #expect(try await client.send(.post, "/api/alerts/\(one)/acknowledge").status == .conflict)
            #expect(try await client.send(.post, "/api/alerts/\(one)/dismiss").status == .ok)
            let again = try await client.send(.post, "/api/alerts/\(one)/dismiss")
            #expect(again.status == .conflict)
            #expect(try json(again)["detail"] as? String == "Alert \(one) is dismissed and can't be dismissed")
            #expect(try await client.send(.post, "/api/alerts/\(one)/acknowledge").status == .conflict)
            // Straight from pending to dismissed.
            let dismissed = try await client.send(.post, "/api/alerts/\(two)/dismiss")
            #expect(try json(dismissed)["status"] as? String == "dismissed")
            #expect(try json(dismissed)["acknowledged_at"] is NSNull)
            let unknown = UUID().uuidString.lowercased()
            for action in ["acknowledge", "dismiss"] {
                let response = try await client.send(.post, "/api/alerts/\(unknown)/\(action)")
                #expect(response.status == .notFound)
                #expect(try json(response)["detail"] as? String == "Alert \(unknown) not found")
            }
            #expect(try await client.send(.get, "/api/alerts/\(unknown)").status == .notFound)
            #expect(try await client.getJSON("/api/alerts/\(one)")["dismissed_at"] is String)
            #expect(try await Self.alerts(client, "&status=dismissed").count == 2)
            #expect(try await client.send(.get, "/api/alerts?status=lost").status == .unprocessableContent)

            // The audit trail has who changed what: pending → acknowledged → dismissed.
            try await waitUntil("the audit trail has the changes") {
                try await client.getJSON("/api/audit?resource_type=alert&status=success")["count"] as? Int == 3
            }
            let entries = try #require(
                try await client.getJSON("/api/audit?resource_type=alert&status=success&resource_id=\(one)")["logs"]
                    as? [[String: Any]])
            let changes = entries.compactMap {
                (($0["details"] as? [String: Any])?["changes"] as? [String: Any])?["status"] as? [String: Any]
            }
            #expect(
                changes.map { "\($0["old"] ?? "")→\($0["new"] ?? "")" }.sorted() == [
                    "acknowledged→dismissed", "pending→acknowledged",
                ])
            // The refusals are there too, as failures.
            let refused = try await client.getJSON("/api/audit?resource_type=alert&status=failure&resource_id=\(one)")
            #expect(refused["count"] as? Int == 3)
        }
    }

    /// The cascade the seed's camera DELETE promises reaches the alerts, as it reaches the
    /// camera's security events: an alert pointing at an event no list shows is gone too.
    @Test(
        "A removed camera's alerts leave the list, GET and changes, also those raised after; registered again, new ones show"
    )
    func removedCamerasAlerts() async throws {
        try await withApp { store, client in
            try await IngestAPITests.register(client, "front_door")
            _ = try await Self.rule(
                client, #"{"name": "all", "cooldown_seconds": 0, "dedup_key_template": "{event_id}"}"#)
            let first = try await Self.event(client, count: 1)
            try await Self.analyse(client, first, score: 50)
            try await Self.settle(store)
            let before = try #require(try await Self.alerts(client).first?["id"] as? String)

            #expect(try await client.send(.delete, "/api/cameras/front_door").status == .noContent)
            // What the engine appends when an analysis of an event from before the removal is
            // recorded after it.
            let late = AlertTriggered(
                id: UUID().uuidString.lowercased(), eventId: Int64(first), ruleId: "r", ruleName: "all",
                severity: .medium, channels: [], dedupKey: "late", cameraId: "front_door", riskScore: 50,
                objectTypes: ["person"], summary: "late", createdAt: Date())
            try await store.append(
                to: late.stream, events: [try NewEvent(late, metadata: EventMetadata(actor: "test"))])
            try await Self.settle(store)
            let listed = try await client.getJSON("/api/alerts?limit=100")
            #expect(listed["count"] as? Int == 0)
            #expect((listed["alerts"] as? [Any])?.isEmpty == true)
            #expect(try await Self.alerts(client, "&camera_id=front_door").isEmpty)
            for id in [before, late.id] {
                #expect(try await client.send(.get, "/api/alerts/\(id)").status == .notFound, "alert \(id)")
                for action in ["acknowledge", "dismiss"] {
                    let response = try await client.send(.post, "/api/alerts/\(id)/\(action)")
                    #expect(response.status == .notFound, "\(action) \(id)")
                    #expect(try json(response)["detail"] as? String == "Alert \(id) not found")
                }
            }
            // The event itself, its history and analyses, and a re-analysis of it: 404 as well.
            for (method, path) in [
                (HTTPRequest.Method.get, ""), (.get, "/history"), (.get, "/analyses"), (.post, "/reanalyse"),
            ] {
                let response = try await client.send(method, "/api/events/\(first)\(path)")
                #expect(response.status == .notFound, "\(method) \(path)")
            }

            // Registered again: a fresh camera, whose new alerts show and the old ones don't.
            try await IngestAPITests.register(client, "front_door")
            let again = try await Self.event(client, count: 1)
            try await Self.analyse(client, again, score: 50)
            try await Self.settle(store)
            let now = try await Self.alerts(client)
            #expect(now.count == 1)
            #expect(now.first?["event_id"] as? Int == again)
            let id = try #require(now.first?["id"] as? String)
            #expect(try await client.send(.post, "/api/alerts/\(id)/acknowledge").status == .ok)
        }
    }
}
