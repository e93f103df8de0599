import API
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import VigilTesting

/// `?as_of=`: a security event, a camera and the system settings as they were at a checkpoint
/// or a time, folded from their streams, through the real router.
@Suite(.scratchApp) struct TimeTravelTests {
    /// The body of `GET uri` with `as_of=point`; a checkpoint just handed out may wait for an
    /// older transaction still running (409, as on `GET /api/log`) for a moment.
    static func asOf(_ client: any TestClientProtocol, _ uri: String, _ point: String) async throws -> TestResponse {
        let separator = uri.contains("?") ? "&" : "?"
        let encoded = point.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? point
        var response = try await client.send(.get, "\(uri)\(separator)as_of=\(encoded)")
        try await waitUntil("\(uri) as of \(point) is readable") {
            if response.status != .conflict { return true }
            response = try await client.send(.get, "\(uri)\(separator)as_of=\(encoded)")
            return false
        }
        return response
    }

    /// The object `GET uri` answers as of `point`, without its `as_of` stamp, and the stamp.
    static func state(
        _ client: any TestClientProtocol, _ uri: String, _ point: String
    ) async throws -> (body: [String: Any], stamp: [String: Any]) {
        let response = try await asOf(client, uri, point)
        #expect(response.status == .ok, "\(uri) as of \(point): \(String(buffer: response.body))")
        var body = try json(response)
        let stamp = try #require(body.removeValue(forKey: "as_of") as? [String: Any], "\(uri) has no as_of")
        return (body, stamp)
    }

    /// Whether two JSON objects are equal (compared as sorted JSON text).
    static func same(_ a: [String: Any], _ b: [String: Any]) -> Bool {
        func text(_ object: [String: Any]) -> String? {
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])).map {
                String(decoding: $0, as: UTF8.self)
            }
        }
        return text(a) != nil && text(a) == text(b)
    }

    /// The checkpoints of a stream's events, oldest first.
    static func checkpoints(_ client: any TestClientProtocol, stream: String) async throws -> [String] {
        let events = try #require(try await client.getJSON("/api/streams/\(stream)")["events"] as? [[String: Any]])
        return events.compactMap { $0["checkpoint"] as? String }
    }

    @Test("an event as of each change in its history, its level under the thresholds in force then")
    func securityEventBackInTime() async throws {
        let client = try await ReadFiltersTests.seeded().client
        let thresholds = #"{"low_max": 10, "medium_max": 20, "high_max": 30}"#
        #expect(try await client.send(.put, "/api/system/severity", json: thresholds).status == .ok)
        let review = #"{"reviewed": true, "notes": "Courier"}"#
        #expect(try await client.send(.patch, "/api/events/2", json: review).status == .ok)
        #expect(try await client.send(.patch, "/api/events/2", json: #"{"notes": null}"#).status == .ok)

        let history = try #require(try await client.getJSON("/api/events/2/history")["history"] as? [[String: Any]])
        #expect(
            history.compactMap { $0["type"] as? String } == [
                "SecurityEventOpened", "SecurityEventClosed", "SecurityEventAnalyzed", "SecurityEventReviewed",
                "SecurityEventReviewed",
            ])
        let at = history.compactMap { $0["checkpoint"] as? String }

        let opened = try await Self.state(client, "/api/events/2", at[0])
        #expect(opened.body["summary"] is NSNull && opened.body["risk_score"] is NSNull)
        #expect(opened.body["ended_at"] is NSNull && opened.body["reviewed"] as? Bool == false)
        #expect(opened.stamp["version"] as? Int == 1 && opened.stamp["checkpoint"] as? String == at[0])
        #expect(
            opened.stamp["point"] as? String == at[0]
                && opened.stamp["recorded_at"] as? String == history[0]["at"] as? String)

        // Analyzed before the thresholds changed: 40 was medium then.
        let analyzed = try await Self.state(client, "/api/events/2", at[2])
        #expect(analyzed.body["risk_score"] as? Int == 40 && analyzed.body["risk_level"] as? String == "medium")
        #expect(analyzed.body["summary"] as? String == "Delivery person leaves a parcel")
        #expect(analyzed.body["ended_at"] as? String == "2026-03-02T09:00:00.000000Z")

        let reviewed = try await Self.state(client, "/api/events/2", at[3])
        #expect(reviewed.body["reviewed"] as? Bool == true && reviewed.body["notes"] as? String == "Courier")
        #expect(reviewed.body["risk_level"] as? String == "critical")

        // The last change, the far future and a time copied from the history: all the live event.
        let live = try await client.getJSON("/api/events/2")
        #expect(live["notes"] is NSNull && live["reviewed"] as? Bool == true)
        for point in [at[4], "9999-12-31", try #require(history[4]["at"] as? String)] {
            let now = try await Self.state(client, "/api/events/2", point)
            #expect(Self.same(now.body, live), "as of \(point): \(now.body) vs \(live)")
            #expect(now.stamp["version"] as? Int == 5)
        }
        // The time of the first review: up to it, not the second.
        let first = try await Self.state(client, "/api/events/2", try #require(history[3]["at"] as? String))
        #expect(first.body["notes"] as? String == "Courier" && first.stamp["version"] as? Int == 4)

        // Every event of the seed, as of the log's head, is the live one.
        let head = try #require(try await client.getJSON("/api/log?limit=1000")["next_checkpoint"] as? String)
        for id in 1...3 {
            let now = try await Self.state(client, "/api/events/\(id)", head)
            #expect(Self.same(now.body, try await client.getJSON("/api/events/\(id)")), "event \(id)")
        }

        let before = try await Self.asOf(client, "/api/events/2", "2000-01-01")
        #expect(before.status == .notFound)
        #expect(try json(before)["detail"] as? String == "Event 2 not found as of 2000-01-01T00:00:00.000Z")
        #expect(try await Self.asOf(client, "/api/events/999", head).status == .notFound)
    }

    @Test("a camera as it was: renamed, seen, removed; its events vanish with it")
    func cameraBackInTime() async throws {
        let client = try TestApp.current.client
        let created = try await client.send(
            .post, "/api/cameras", json: #"{"name": "Porch", "folder_path": "/cams/porch"}"#)
        #expect(created.status == .created)
        #expect(try await client.send(.patch, "/api/cameras/porch", json: #"{"name": "Front porch"}"#).status == .ok)
        let detection = IngestAPITests.detection(camera: "porch", object: "person", at: "2026-11-20T10:00:00.250Z")
        #expect(try await client.send(.post, "/api/detections", json: detection).status == .created)
        try await waitUntil("the porch camera was seen") {
            try await client.getJSON("/api/cameras/porch")["last_seen_at"] as? String != nil
        }
        let live = try await client.getJSON("/api/cameras/porch")
        #expect(live["last_seen_at"] as? String == "2026-11-20T10:00:00.250000Z")
        let seenAt = try #require(try await Self.checkpoints(client, stream: "detections-porch").last)
        #expect(try await client.send(.delete, "/api/cameras/porch").status == .noContent)

        let at = try await Self.checkpoints(client, stream: "camera-porch")
        #expect(at.count == 3)
        let registered = try await Self.state(client, "/api/cameras/porch", at[0])
        #expect(registered.body["name"] as? String == "Porch" && registered.body["last_seen_at"] is NSNull)
        #expect(registered.body["created_at"] as? String == live["created_at"] as? String)
        let renamed = try await Self.state(client, "/api/cameras/porch", at[1])
        #expect(renamed.body["name"] as? String == "Front porch" && renamed.body["last_seen_at"] is NSNull)
        #expect(renamed.stamp["version"] as? Int == 2)
        let seen = try await Self.state(client, "/api/cameras/porch", seenAt)
        #expect(Self.same(seen.body, live), "\(seen.body) vs \(live)")

        let removed = try await Self.asOf(client, "/api/cameras/porch", at[2])
        #expect(removed.status == .notFound)
        #expect(try json(removed)["detail"] as? String == "Camera porch not found as of \(at[2])")
        #expect(try await client.send(.get, "/api/cameras/porch").status == .notFound)
    }

    @Test("a removed camera's security event is there before the removal, gone after")
    func removedCamerasEvents() async throws {
        let client = try await ReadFiltersTests.seeded().client
        let before = try #require(try await client.getJSON("/api/log?limit=1000")["next_checkpoint"] as? String)
        #expect(try await client.send(.delete, "/api/cameras/back_yard").status == .noContent)
        try await waitUntil("the removal is applied") {
            try await client.send(.get, "/api/events/2").status == .notFound
        }
        let removal = try #require(try await Self.checkpoints(client, stream: "camera-back_yard").last)
        #expect(try await Self.state(client, "/api/events/2", before).body["camera_id"] as? String == "back_yard")
        #expect(try await Self.asOf(client, "/api/events/2", removal).status == .notFound)
        // Another camera's events stay.
        #expect(try await Self.asOf(client, "/api/events/1", removal).status == .ok)
    }

    @Test("the settings as they were: config, thresholds and rate limits, from the defaults on")
    func settingsBackInTime() async throws {
        let client = try TestApp.current.client
        let defaults = try await client.getJSON("/api/system/config")
        #expect(try await client.send(.patch, "/api/system/config", json: #"{"retention_days": 60}"#).status == .ok)
        #expect(
            try await client.send(
                .put, "/api/system/severity", json: #"{"low_max": 10, "medium_max": 20, "high_max": 30}"#
            )
            .status == .ok)
        #expect(try await client.send(.patch, "/api/system/config", json: #"{"retention_days": 90}"#).status == .ok)
        #expect(try await client.send(.patch, "/api/system/rate-limits", json: #"{"search": 5}"#).status == .ok)
        let at = try await Self.checkpoints(client, stream: "config-system")
        #expect(at.count == 4)

        let first = try await Self.state(client, "/api/system/config", at[0])
        #expect(first.body["retention_days"] as? Int == 60 && first.stamp["version"] as? Int == 1)
        let severity = try await Self.state(client, "/api/system/severity", at[0])
        #expect((severity.body["thresholds"] as? [String: Any])?["high_max"] as? Int == 84)
        let changed = try await Self.state(client, "/api/system/severity", at[1])
        #expect((changed.body["thresholds"] as? [String: Any])?["high_max"] as? Int == 30)
        #expect(try await Self.state(client, "/api/system/config", at[2]).body["retention_days"] as? Int == 90)
        #expect(try await Self.state(client, "/api/system/rate-limits", at[2]).body["search"] as? Int == 60)
        #expect(try await Self.state(client, "/api/system/rate-limits", at[3]).body["search"] as? Int == 5)

        // Before any change: the server's defaults, standing on nothing.
        let original = try await Self.state(client, "/api/system/config", "2000-01-01T00:00:00Z")
        #expect(Self.same(original.body, defaults))
        #expect(original.stamp["version"] as? Int == 0 && original.stamp["checkpoint"] is NSNull)
        #expect(
            original.stamp["recorded_at"] is NSNull && original.stamp["point"] as? String == "2000-01-01T00:00:00.000Z")
    }

    @Test("a bad as_of is a clear error: 422 naming it, 400 for a malformed checkpoint, 409 for one not handed out")
    func badPoints() async throws {
        let client = try TestApp.current.client
        for uri in ["/api/events/1", "/api/cameras/porch", "/api/system/config"] {
            for bad in ["yesterday", "2026-02-30", "12345", "10000-01-01T00:00:00Z"] {
                let response = try await client.send(.get, "\(uri)?as_of=\(bad)")
                #expect(response.status == .unprocessableContent, "\(uri) \(bad)")
                let detail = try #require(try json(response)["detail"] as? [[String: Any]])
                #expect((detail.first?["loc"] as? [String]) == ["query", "as_of"], "\(uri) \(bad)")
            }
            let overflow = try await client.send(.get, "\(uri)?as_of=\(String(repeating: "f", count: 32))")
            #expect(overflow.status == .badRequest)
            #expect((try json(overflow)["detail"] as? String)?.hasPrefix("Invalid checkpoint") == true)
            // A transaction this cluster has not reached: no read handed it out.
            let future = try await client.send(.get, "\(uri)?as_of=7fffffffffffffff0000000000000001")
            #expect(future.status == .conflict)
            #expect((try json(future)["detail"] as? String)?.hasPrefix("Checkpoint not readable yet") == true)
        }
    }
}
