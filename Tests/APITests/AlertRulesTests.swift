import Domain
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing
import VigilTesting

@testable import API

/// `/api/alerts/rules` through the real router: defaults, every field, filters, changes,
/// refusals naming the field, access, and the audit trail's old and new values.
@Suite struct AlertRulesTests {
    static let root = AuthTests.root

    @Test("A rule's life: made with defaults or every field, listed, changed, refused when invalid, deleted")
    func lifecycle() async throws {
        try await withApp(configure: { $0.adminKey = Self.root }) { _, client in
            func call(
                _ method: HTTPRequest.Method, _ path: String, _ body: String? = nil, key: String? = Self.root
            )
                async throws -> TestResponse
            {
                try await client.call(method, path, key: key, json: body)
            }
            let base = "/api/alerts/rules"
            let minimal = try await call(.post, base, #"{"name": "Anything"}"#)
            #expect(minimal.status == .created)
            let defaults = try json(minimal)
            #expect(defaults["enabled"] as? Bool == true && defaults["severity"] as? String == "medium")
            #expect(defaults["risk_threshold"] is NSNull && defaults["object_types"] is NSNull)
            #expect(defaults["schedule"] is NSNull && defaults["channels"] as? [String] == [])
            #expect(defaults["dedup_key_template"] as? String == "{camera_id}:{rule_id}")
            #expect(defaults["cooldown_seconds"] as? Int == 300)
            #expect(defaults["created_at"] is String && defaults["id"] is String)

            let full = try await call(
                .post, base,
                #"{"name": "Person at night", "description": "front door", "severity": "critical", "risk_threshold": 60, "#
                    + #""object_types": ["person"], "camera_ids": ["front_door"], "zone_ids": [], "min_confidence": 0.7, "#
                    + #""schedule": {"days": ["sun", "mon"], "start_time": "22:00", "end_time": "06:00", "timezone": "Europe/Paris"}, "#
                    + #""dedup_key_template": "{camera_id}:{object_type}", "cooldown_seconds": 600, "channels": ["webhook", "webhook"]}"#
            )
            #expect(full.status == .created)
            let rule = try json(full)
            let id = try #require(rule["id"] as? String)
            let schedule = try #require(rule["schedule"] as? [String: Any])
            #expect(
                schedule["days"] as? [String] == ["mon", "sun"] && schedule["timezone"] as? String == "Europe/Paris")
            #expect(schedule["start_time"] as? String == "22:00" && schedule["end_time"] as? String == "06:00")
            #expect(rule["channels"] as? [String] == ["webhook"] && rule["min_confidence"] as? Double == 0.7)

            // Filters.
            #expect(try json(try await call(.get, base))["count"] as? Int == 2)
            #expect(try json(try await call(.get, "\(base)?severity=critical"))["count"] as? Int == 1)
            #expect(try await call(.get, "\(base)?severity=urgent").status == .unprocessableContent)

            // Changed: any subset; null clears what may be null.
            let changed = try json(
                try await call(.put, "\(base)/\(id)", #"{"enabled": false, "risk_threshold": null, "name": "Night"}"#))
            #expect(changed["enabled"] as? Bool == false && changed["risk_threshold"] is NSNull)
            #expect(changed["name"] as? String == "Night" && changed["severity"] as? String == "critical")
            #expect(try json(try await call(.get, "\(base)?enabled=false"))["count"] as? Int == 1)
            #expect(try json(try await call(.get, "\(base)?enabled=true"))["count"] as? Int == 1)

            // Refused, naming the field; nothing stored.
            let refusals: [(String, [String])] = [
                (#"{"severity": "critical"}"#, ["body", "name"]),
                (#"{"name": "x", "severity": "urgent"}"#, ["body", "severity"]),
                (#"{"name": "x", "risk_threshold": 101}"#, ["body", "risk_threshold"]),
                (#"{"name": "x", "min_confidence": 1.5}"#, ["body", "min_confidence"]),
                (#"{"name": "x", "channels": ["pigeon"]}"#, ["body", "channels"]),
                (#"{"name": "x", "dedup_key_template": "{camera_id}:{weather}"}"#, ["body", "dedup_key_template"]),
                (#"{"name": "x", "dedup_key_template": "{camera_id"}"#, ["body", "dedup_key_template"]),
                (#"{"name": "x", "cooldown_seconds": -1}"#, ["body", "cooldown_seconds"]),
                (
                    #"{"name": "x", "schedule": {"start_time": "25:00", "end_time": "06:00"}}"#,
                    ["body", "schedule", "start_time"]
                ),
                (
                    #"{"name": "x", "schedule": {"start_time": "06:00", "end_time": "06:00"}}"#,
                    ["body", "schedule", "end_time"]
                ),
                (#"{"name": "x", "schedule": {"start_time": "22:00"}}"#, ["body", "schedule", "end_time"]),
                (
                    #"{"name": "x", "schedule": {"days": ["mun"], "start_time": "22:00", "end_time": "06:00"}}"#,
                    ["body", "schedule", "days"]
                ),
                (
                    #"{"name": "x", "schedule": {"start_time": "22:00", "end_time": "06:00", "timezone": "Mars/Base"}}"#,
                    ["body", "schedule", "timezone"]
                ),
                (
                    #"{"name": "x", "schedule": {"start_time": "22:00", "end_time": "06:00", "tz": "UTC"}}"#,
                    ["body", "schedule", "tz"]
                ),
                (#"{"name": "x", "mood": 1}"#, ["body", "mood"]),
            ]
            for (body, location) in refusals {
                let response = try await call(.post, base, body)
                #expect(response.status == .unprocessableContent, "\(body)")
                let issues = try json(response)["detail"] as? [[String: Any]] ?? []
                #expect(issues.contains { ($0["loc"] as? [Any])?.map { "\($0)" } == location }, "\(body): \(issues)")
            }
            #expect(try json(try await call(.get, base))["count"] as? Int == 2)
            #expect(try await call(.put, "\(base)/nope", #"{"name": "y"}"#).status == .notFound)

            // Access.
            let viewer = try await client.issueKey("vera", role: .viewer, adminKey: Self.root)
            #expect(try await call(.get, "\(base)/\(id)", key: viewer).status == .ok)
            #expect(try await call(.post, base, #"{"name": "z"}"#, key: viewer).status == .forbidden)

            #expect(try await call(.delete, "\(base)/\(id)").status == .noContent)
            #expect(try await call(.get, "\(base)/\(id)").status == .notFound)
            #expect(try json(try await call(.get, base))["count"] as? Int == 1)

            // The trail.
            let trail = try await AuditTests.entries(client, "resource_id=\(id)", count: 3)
            #expect(
                trail.map { $0["action"] as? String } == [
                    "alert_rule_deleted", "alert_rule_updated", "alert_rule_created",
                ])
            let update = AuditTests.changes(trail[1])
            #expect(update["enabled"] == ["old": "true", "new": "false"])
            #expect(update["risk_threshold"] == ["old": "60", "new": "null"])
            #expect(update["name"] == ["old": #""Person at night""#, "new": #""Night""#])
            #expect(update["severity"] == nil)
        }
    }

    @Test("Testing a rule against stored events says which would fire and why not for the others")
    func testRoute() async throws {
        let prefix = PipelineTests.prefix()
        try await withApp(configure: {
            PipelineTests.configure(prefix: prefix)(&$0)
            $0.adminKey = Self.root
        }) { _, client in
            func call(_ method: HTTPRequest.Method, _ path: String, _ body: String? = nil) async throws -> TestResponse
            {
                try await client.call(method, path, key: Self.root, json: body)
            }
            #expect(
                try await call(.post, "/api/cameras", #"{"name": "porch", "folder_path": "/export/porch"}"#).status
                    == .created)
            let batch = [IngestAPITests.detection(object: "person"), IngestAPITests.detection(object: "dog")]
            #expect(
                try await call(.post, "/api/detections/batch", "[\(batch.joined(separator: ","))]").status == .created)
            var eventID = 0
            try await waitUntil("the batch was closed and analyzed") {
                let events = try json(try await call(.get, "/api/events"))["events"] as? [[String: Any]] ?? []
                eventID = events.first?["id"] as? Int ?? 0
                return events.count == 1 && events[0]["risk_score"] is Int
            }
            func rule(_ body: String) async throws -> String {
                try #require(try json(try await call(.post, "/api/alerts/rules", body))["id"] as? String)
            }
            let people = try await rule(#"{"name": "people", "risk_threshold": 0, "object_types": ["person"]}"#)
            let carRule = try await rule(#"{"name": "cars", "object_types": ["car"], "cooldown_seconds": 10}"#)
            let night = try await rule(
                #"{"name": "night", "schedule": {"start_time": "22:00", "end_time": "06:00", "timezone": "UTC"}}"#)

            let fires = try json(try await call(.post, "/api/alerts/rules/\(people)/test", "{}"))
            #expect(fires["tested"] as? Int == 1 && fires["matched"] as? Int == 1)
            let result = try #require((fires["results"] as? [[String: Any]])?.first)
            #expect(result["event_id"] as? Int == eventID && result["would_fire"] as? Bool == true)
            #expect(result["reasons"] as? [String] == [])

            let noCar = try json(try await call(.post, "/api/alerts/rules/\(carRule)/test", nil))
            let why = try #require((noCar["results"] as? [[String: Any]])?.first)
            #expect(why["would_fire"] as? Bool == false)
            #expect(why["reasons"] as? [String] == ["no detection of car"])

            let midnight = try json(
                try await call(
                    .post, "/api/alerts/rules/\(night)/test",
                    #"{"event_ids": [\#(eventID)], "test_time": "2026-11-30T23:30:00Z"}"#))
            #expect(midnight["matched"] as? Int == 1)
            let noon = try json(
                try await call(
                    .post, "/api/alerts/rules/\(night)/test",
                    #"{"event_ids": [\#(eventID)], "test_time": "2026-11-30T12:00:00Z"}"#))
            #expect(noon["matched"] as? Int == 0 && noon["tested"] as? Int == 1)

            #expect(try await call(.post, "/api/alerts/rules/nope/test", "{}").status == .notFound)
            for bad in [
                #"{"limit": 0}"#, #"{"event_ids": ["a"]}"#, #"{"event_ids": []}"#, #"{"test_time": "noon"}"#,
                #"{"test_time": "0000-01-01T00:00:00Z"}"#,
            ] {
                #expect(
                    try await call(.post, "/api/alerts/rules/\(people)/test", bad).status == .unprocessableContent,
                    "\(bad)")
            }
        }
    }
}
