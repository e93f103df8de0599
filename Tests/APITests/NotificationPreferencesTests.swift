import API
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Pipeline
import Testing
import VigilTesting

/// `/api/notification-preferences/…` and `/api/notifications/preferences/…` (one
/// implementation), `/api/notification/config|test`, and what the webhook deliverer makes of
/// the preferences.
@Suite struct NotificationPreferencesTests {
    @Test("Global preferences: defaults, changes through either family, validation, audit")
    func globalPreferences() async throws {
        try await withApp { _, client in
            let defaults = try await client.getJSON("/api/notification-preferences")
            #expect(defaults["enabled"] as? Bool == true && defaults["sound"] as? String == "default")
            #expect(defaults["risk_filters"] as? [String] == ["low", "medium", "high", "critical"])
            let changed = try await client.send(
                .put, "/api/notification-preferences",
                json: #"{"sound": "alert", "risk_filters": ["critical", "high", "high"]}"#)
            #expect(changed.status == .ok, "\(String(buffer: changed.body))")
            #expect(try json(changed)["risk_filters"] as? [String] == ["high", "critical"])
            // The other family reads and writes the same preferences.
            #expect(try await client.getJSON("/api/notifications/preferences")["sound"] as? String == "alert")
            let patched = try await client.send(.patch, "/api/notifications/preferences", json: #"{"enabled": false}"#)
            #expect(try json(patched)["enabled"] as? Bool == false)
            #expect(try await client.getJSON("/api/notification-preferences")["enabled"] as? Bool == false)
            for body in [
                #"{"sound": "siren"}"#, #"{"risk_filters": ["severe"]}"#, #"{"enabled": "yes"}"#, #"{"x": 1}"#,
            ] {
                let refused = try await client.send(.put, "/api/notification-preferences", json: body)
                #expect(refused.status == .unprocessableContent, "\(body)")
            }
            try await waitUntil("the audit trail has both changes") {
                try await client.getJSON("/api/audit?resource_type=notification_preferences&status=success")["count"]
                    as? Int == 2
            }
            let entries = try #require(
                try await client.getJSON("/api/audit?resource_type=notification_preferences&status=success")["logs"]
                    as? [[String: Any]])
            let newest = try #require(
                (entries.first?["details"] as? [String: Any])?["changes"] as? [String: [String: Any]])
            #expect(newest["enabled"]?["old"] as? Bool == true && newest["enabled"]?["new"] as? Bool == false)
        }
    }

    @Test("Camera settings: defaults for a known camera, 404 for an unknown one, threshold cleared by null")
    func cameraSettings() async throws {
        try await withApp { _, client in
            try await IngestAPITests.register(client, "front_door")
            let fresh = try await client.getJSON("/api/notification-preferences/cameras/front_door")
            #expect(fresh["enabled"] as? Bool == true && fresh["risk_threshold"] is NSNull)
            #expect(fresh["camera_id"] as? String == "front_door")
            #expect(
                try await client.send(.get, "/api/notification-preferences/cameras/nowhere").status == .notFound)
            #expect(
                try await client.send(.put, "/api/notification-preferences/cameras/nowhere", json: "{}").status
                    == .notFound)
            let set = try await client.send(
                .patch, "/api/notifications/preferences/cameras/front_door", json: #"{"risk_threshold": 75}"#)
            #expect(try json(set)["risk_threshold"] as? Int == 75)
            let list = try await client.getJSON("/api/notification-preferences/cameras")
            #expect(list["count"] as? Int == 1)
            #expect((list["settings"] as? [[String: Any]])?.first?["risk_threshold"] as? Int == 75)
            let cleared = try await client.send(
                .put, "/api/notification-preferences/cameras/front_door",
                json: #"{"risk_threshold": null, "enabled": false}"#)
            #expect(try json(cleared)["risk_threshold"] is NSNull && json(cleared)["enabled"] as? Bool == false)
            let refused = try await client.send(
                .put, "/api/notification-preferences/cameras/front_door", json: #"{"risk_threshold": 101}"#)
            #expect(refused.status == .unprocessableContent)
        }
    }

    @Test("A removed camera's setting leaves the list; its name registered again starts from the defaults")
    func removedCamerasSetting() async throws {
        try await withApp { _, client in
            try await IngestAPITests.register(client, "garage")
            let path = "/api/notification-preferences/cameras/garage"
            let set = try await client.send(.put, path, json: #"{"enabled": false, "risk_threshold": 90}"#)
            #expect(set.status == .ok)
            #expect(try await client.getJSON("/api/notification-preferences/cameras")["count"] as? Int == 1)
            #expect(try await client.send(.delete, "/api/cameras/garage").status == .noContent)
            try await waitUntil("the setting leaves the list") {
                let list = try await client.getJSON("/api/notification-preferences/cameras")
                return list["count"] as? Int == 0 && (list["settings"] as? [Any])?.isEmpty == true
            }
            try await IngestAPITests.register(client, "garage")
            let fresh = try await client.getJSON(path)
            #expect(fresh["enabled"] as? Bool == true && fresh["risk_threshold"] is NSNull, "\(fresh)")
        }
    }

    @Test("Quiet hours: create, wrap midnight, validation, update, delete, 404")
    func quietHours() async throws {
        try await withApp { _, client in
            let created = try await client.send(
                .post, "/api/notification-preferences/quiet-hours",
                json:
                    #"{"label": "Night Hours", "start_time": "22:00:00", "end_time": "06:30", "days": ["monday", "fri"], "timezone": "Europe/Berlin"}"#
            )
            #expect(created.status == .created, "\(String(buffer: created.body))")
            let period = try json(created)
            let id = try #require(period["id"] as? String)
            #expect(period["end_time"] as? String == "06:30:00")
            #expect(period["days"] as? [String] == ["monday", "friday"])
            // Every day when no days are given.
            let lunch = try await client.send(
                .post, "/api/notifications/preferences/quiet-hours",
                json: #"{"label": "Lunch", "start_time": "12:00", "end_time": "13:00"}"#)
            #expect(try json(lunch)["days"] as? [String] == QuietHours.weekdays)
            for body in [
                #"{"label": "empty", "start_time": "22:00", "end_time": "22:00:00"}"#,
                #"{"label": "bad", "start_time": "25:00", "end_time": "06:00"}"#,
                #"{"label": "bad", "start_time": "22:00", "end_time": "06:00", "days": ["someday"]}"#,
                #"{"label": "bad", "start_time": "22:00", "end_time": "06:00", "timezone": "Mars/Olympus"}"#,
                #"{"start_time": "22:00", "end_time": "06:00"}"#,
            ] {
                let refused = try await client.send(.post, "/api/notification-preferences/quiet-hours", json: body)
                #expect(refused.status == .unprocessableContent, "\(body)")
            }
            let list = try await client.getJSON("/api/notification-preferences/quiet-hours")
            #expect(list["count"] as? Int == 2)
            let updated = try await client.send(
                .put, "/api/notifications/preferences/quiet-hours/\(id)", json: #"{"end_time": "07:00"}"#)
            #expect(try json(updated)["end_time"] as? String == "07:00:00")
            #expect(try json(updated)["label"] as? String == "Night Hours")
            let path = "/api/notification-preferences/quiet-hours/\(id)"
            #expect(
                try await client.send(.put, path, json: #"{"start_time": "07:00"}"#).status == .unprocessableContent)
            #expect(try await client.send(.delete, path).status == .noContent)
            #expect(try await client.send(.get, path).status == .notFound)
            #expect(try await client.send(.delete, path).status == .notFound)
            #expect(try await client.getJSON("/api/notification-preferences/quiet-hours")["count"] as? Int == 1)
        }
    }

    @Test("Quiet hours, a disabled camera or preferences off suppress the webhook, never the alert")
    func suppressedDelivery() async throws {
        try await WebhookReceiver.with(failing: 0) { receiver, url in
            try await withApp(configure: WebhookTests.configure(url)) { store, client in
                let always = try await client.send(
                    .post, "/api/notification-preferences/quiet-hours",
                    json: #"{"label": "always", "start_time": "00:00", "end_time": "23:59:59"}"#)
                #expect(always.status == .created)
                let id = try await WebhookTests.raise(client, store)
                try await waitUntil("the delivery is suppressed") {
                    try await IngestAPITests.count(store, type: AlertDeliverySuppressed.type) == 1
                }
                #expect(try await WebhookTests.outbox(store).isEmpty)
                #expect(receiver.all.isEmpty)
                let alert = try await client.getJSON("/api/alerts/\(id)")
                #expect(alert["status"] as? String == "pending")
                let history = try await store.readStream(Alert.stream(id), limit: 10)
                let suppressed = try #require(history?.events.last)
                #expect(try AlertDeliverySuppressed.decode(suppressed.data).reason == "quiet hours: always")
            }
        }
    }

    @Test("Notification config and a signed test request to each webhook; other channels are a 400")
    func configAndTest() async throws {
        try await WebhookReceiver.with(failing: 0) { receiver, url in
            try await withApp(configure: WebhookTests.configure(url)) { _, client in
                let config = try await client.getJSON("/api/notification/config")
                #expect(config["webhook_configured"] as? Bool == true && config["email_configured"] as? Bool == false)
                #expect(config["available_channels"] as? [String] == ["webhook"])
                #expect(!String(describing: config).contains(WebhookTests.secret))
                let tested = try await client.send(.post, "/api/notification/test", json: #"{"channel": "webhook"}"#)
                #expect(tested.status == .ok, "\(String(buffer: tested.body))")
                let body = try json(tested)
                #expect(body["success"] as? Bool == true)
                #expect((body["results"] as? [[String: Any]])?.first?["status_code"] as? Int == 200)
                #expect(receiver.all.count == 1 && receiver.all.allSatisfy(WebhookTests.verifies))
                let email = try await client.send(.post, "/api/notification/test", json: #"{"channel": "email"}"#)
                #expect(email.status == .badRequest)
                #expect(
                    try await client.send(.post, "/api/notification/test", json: #"{"channel": "fax"}"#).status
                        == .unprocessableContent)
                try await waitUntil("the test is in the audit trail") {
                    try await client.getJSON("/api/audit?action=notification_tested&status=success")["count"] as? Int
                        == 1
                }
            }
        }
        try await withApp { _, client in
            #expect(try await client.getJSON("/api/notification/config")["webhook_configured"] as? Bool == false)
            let refused = try await client.send(.post, "/api/notification/test", json: #"{"channel": "webhook"}"#)
            #expect(refused.status == .badRequest)
        }
    }
}
