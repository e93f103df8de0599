import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Synthetic
import Testing
import VigilTesting

@testable import API

/// The audit trail (`/api/audit`), projected from the log, through the real router.
@Suite struct AuditTests {
    static let root = AuthTests.root

    /// The entries `query` lists once the trail holds `count` of them.
    static func entries(
        _ client: any TestClientProtocol, _ query: String, count: Int
    ) async throws -> [[String: Any]] {
        var entries: [[String: Any]] = []
        try await waitUntil("/api/audit?\(query) lists \(count)") {
            let body = try json(try await client.call(.get, "/api/audit?\(query)", key: Self.root))
            entries = body["logs"] as? [[String: Any]] ?? []
            return body["count"] as? Int == count
        }
        return entries
    }

    /// An entry's `details.changes`, each old and new value as JSON text (`false`, `null`, `"a"`).
    static func changes(_ entry: [String: Any]) -> [String: [String: String]] {
        let changes = (entry["details"] as? [String: Any])?["changes"] as? [String: [String: Any]] ?? [:]
        return changes.mapValues { pair in
            pair.mapValues { value in
                let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed])
                return data.map { String(decoding: $0, as: UTF8.self) } ?? "?"
            }
        }
    }

    @Test("alice reviews and is refused the thresholds, root changes them: the trail tells exactly that")
    func whoChangedWhat() async throws {
        try await AuthTests.withAuthApp { store, client in
            try await store.appendSynthetic(
                SyntheticHistory(start: Date(timeIntervalSince1970: 1_780_000_000)), events: 0..<5)
            let alice = try await client.issueKey("alice", role: .`operator`, adminKey: Self.root)
            let rootKey = try await client.issueKey("root", role: .admin, adminKey: Self.root)
            try await waitUntil("the events are projected") {
                try json(try await client.call(.get, "/api/events", key: alice))["count"] as? Int == 5
            }
            let agent: HTTPFields = [.userAgent: "alice-browser/1.0"]
            let review = try await client.call(
                .patch, "/api/events/3", key: alice, json: #"{"reviewed": true, "notes": "Courier"}"#, headers: agent)
            #expect(review.status == .ok)
            let again = try await client.call(
                .patch, "/api/events/3", key: alice, json: #"{"reviewed": true, "notes": "Courier, parcel"}"#)
            #expect(again.status == .ok)
            // The same review again changes nothing, so it appends nothing: no entry says alice
            // changed something she didn't.
            let same = try await client.call(
                .patch, "/api/events/3", key: alice, json: #"{"notes": "Courier, parcel", "reviewed": true}"#)
            #expect(same.status == .ok)
            #expect(try json(same)["notes"] as? String == "Courier, parcel" && json(same)["reviewed"] as? Bool == true)
            let thresholds = #"{"low_max": 20, "medium_max": 45, "high_max": 70}"#
            #expect(
                try await client.call(.put, "/api/system/severity", key: alice, json: thresholds).status == .forbidden)
            #expect(try await client.call(.put, "/api/system/severity", key: rootKey, json: thresholds).status == .ok)

            // The event's own history: opened, …, reviewed by alice, each with who and when.
            let history = try json(try await client.call(.get, "/api/events/3/history", key: alice))
            let changes = try #require(history["history"] as? [[String: Any]])
            #expect(history["count"] as? Int == changes.count && history["event_id"] as? Int == 3)
            #expect(changes.first?["type"] as? String == "SecurityEventOpened")
            #expect(changes.map { $0["version"] as? Int ?? 0 } == Array(1...changes.count))
            #expect(changes.last?["type"] as? String == "SecurityEventReviewed")
            #expect(changes.filter { $0["type"] as? String == "SecurityEventReviewed" }.count == 2)
            #expect(changes.last?["actor"] as? String == "alice" && changes.last?["at"] is String)
            #expect((changes.last?["data"] as? [String: Any])?["notes"] as? String == "Courier, parcel")
            #expect(changes.dropLast(2).allSatisfy { $0["actor"] as? String == "synthetic" })
            #expect(try await client.call(.get, "/api/events/999/history", key: alice).status == .notFound)

            let byAlice = try await Self.entries(client, "actor=alice", count: 3)
            let refused = try #require(byAlice.first)  // newest first
            #expect(refused["action"] as? String == "settings_changed")
            #expect(refused["resource_type"] as? String == "severity_thresholds")
            #expect(refused["status"] as? String == "failure")
            let refusal = try #require(refused["details"] as? [String: Any])
            #expect(refusal["status_code"] as? Int == 403)
            #expect(refusal["detail"] as? String == "API key 'alice' (role operator) may not PUT /api/system/severity")
            // The second review's old values are the first one's; `reviewed` didn't change.
            #expect(Self.changes(byAlice[1]) == ["notes": ["old": #""Courier""#, "new": #""Courier, parcel""#]])
            let reviewed = byAlice[2]
            #expect(reviewed["action"] as? String == "event_reviewed" && reviewed["status"] as? String == "success")
            #expect(reviewed["resource_type"] as? String == "event" && reviewed["resource_id"] as? String == "3")
            #expect(reviewed["user_agent"] as? String == "alice-browser/1.0")
            #expect(
                Self.changes(reviewed)
                    == ["reviewed": ["old": "false", "new": "true"], "notes": ["old": "null", "new": #""Courier""#]])

            let severity = try await Self.entries(client, "resource_type=severity_thresholds", count: 2)
            #expect(severity.map { $0["actor"] as? String } == ["root", "alice"])
            #expect(severity.map { $0["resource_id"] as? String } == ["severity", "severity"])
            #expect(severity.map { $0["status"] as? String } == ["success", "failure"])
            #expect(
                Self.changes(severity[0])
                    == [
                        "low_max": ["old": "29", "new": "20"], "medium_max": ["old": "59", "new": "45"],
                        "high_max": ["old": "84", "new": "70"],
                    ])
            // One entry by its id; the stats of the whole trail.
            let id = try #require(severity[0]["id"] as? Int)
            let item = try json(try await client.call(.get, "/api/audit/\(id)", key: Self.root))
            #expect(item["actor"] as? String == "root" && item["timestamp"] is String)
            let stats = try json(try await client.call(.get, "/api/audit/stats", key: Self.root))
            // The history's cameras (actor synthetic), the keys issued (alice, root), the review,
            // the refusal, the change.
            #expect(stats["total_logs"] as? Int == 10)
            #expect(stats["logs_today"] as? Int == 10)
            #expect(
                stats["by_action"] as? [String: Int]
                    == ["camera_created": 4, "api_key_created": 2, "event_reviewed": 2, "settings_changed": 2])
            #expect(stats["by_status"] as? [String: Int] == ["success": 9, "failure": 1])
            #expect((stats["recent_actors"] as? [String])?.first == "root")
            #expect(Set(stats["recent_actors"] as? [String] ?? []) == ["root", "alice", "admin", "synthetic"])
            let filtered = try json(try await client.call(.get, "/api/audit/stats?actor=alice", key: Self.root))
            #expect(filtered["total_logs"] as? Int == 3 && filtered["recent_actors"] as? [String] == ["alice"])
        }
    }

    @Test("config, camera and key changes carry old and new values; refusals of any kind are failures")
    func changesAndRefusals() async throws {
        try await AuthTests.withAuthApp { store, client in
            let patch = try await client.call(
                .patch, "/api/system/config", key: Self.root, json: #"{"retention_days": 7}"#)
            #expect(patch.status == .ok)
            let camera = #"{"name": "Front Door", "folder_path": "/export/front"}"#
            #expect(try await client.call(.post, "/api/cameras", key: Self.root, json: camera).status == .created)
            #expect(try await client.call(.post, "/api/cameras", key: Self.root, json: camera).status == .conflict)
            let rename = try await client.call(
                .patch, "/api/cameras/front_door", key: Self.root, json: #"{"status": "offline"}"#)
            #expect(rename.status == .ok)
            #expect(try await client.call(.delete, "/api/cameras/front_door", key: Self.root).status == .noContent)
            let invalid = try await client.call(
                .patch, "/api/system/config", key: Self.root, json: #"{"retention_days": 0}"#)
            #expect(invalid.status == .unprocessableContent)
            // Reads are not commands: a refused read is not recorded.
            #expect(try await client.call(.get, "/api/events", key: nil).status == .unauthorized)
            #expect(try await client.call(.post, "/api/cameras", key: nil, json: camera).status == .unauthorized)

            let config = try await Self.entries(client, "resource_type=system_config", count: 2)
            #expect(config[0]["status"] as? String == "failure")
            #expect((config[0]["details"] as? [String: Any])?["status_code"] as? Int == 422)
            #expect(config[1]["action"] as? String == "config_updated" && config[1]["actor"] as? String == "admin")
            #expect(Self.changes(config[1]) == ["retention_days": ["old": "30", "new": "7"]])

            let cameras = try await Self.entries(client, "resource_type=camera", count: 5)
            #expect(
                cameras.map { "\($0["action"] as? String ?? "") \($0["status"] as? String ?? "")" } == [
                    "camera_created failure", "camera_deleted success", "camera_updated success",
                    "camera_created failure", "camera_created success",
                ])
            #expect(cameras[0]["actor"] as? String == "anonymous")
            #expect((cameras[3]["details"] as? [String: Any])?["status_code"] as? Int == 409)
            #expect(Self.changes(cameras[2]) == ["status": ["old": #""online""#, "new": #""offline""#]])
            #expect(
                Self.changes(cameras[4])
                    == [
                        "name": ["old": "null", "new": #""Front Door""#],
                        "folder_path": ["old": "null", "new": #""\/export\/front""#],
                        "status": ["old": "null", "new": #""online""#],
                    ])
            let failures = try await Self.entries(client, "status=failure", count: 3)
            #expect(failures.allSatisfy { $0["status"] as? String == "failure" })
            let bad = try await client.call(.get, "/api/audit?status=maybe", key: Self.root)
            #expect(bad.status == .unprocessableContent)
            #expect(try await client.call(.get, "/api/audit/999999", key: Self.root).status == .notFound)
            #expect(try await store.readAll().filter { $0.type == CommandRejected.type }.count == 3)
        }
    }

    static func refusals(_ store: EventStore) async throws -> [CommandRejected] {
        try await store.readAll().filter { $0.type == CommandRejected.type }.map { try CommandRejected.decode($0.data) }
    }

    @Test("refusals are recorded at most `burst` at a time per actor and address")
    func refusalsAreRateLimited() async throws {
        let configure: @Sendable (inout ServerConfiguration) -> Void = {
            $0.adminKey = Self.root
            $0.refusalInterval = .seconds(600)  // no refill within the test
        }
        try await withApp(configure: configure) { store, client in
            for _ in 0..<25 {
                let response = try await client.call(.put, "/api/system/severity", key: "wrong", json: "{}")
                #expect(response.status == .unauthorized)
            }
            let recorded = try await Self.refusals(store)
            #expect(recorded.count == 20)
            #expect(recorded.allSatisfy { $0.suppressed == nil && $0.status == 401 })
            // Another actor has a bucket of its own.
            let alice = try await client.issueKey("alice", role: .viewer, adminKey: Self.root)
            #expect(try await client.call(.put, "/api/system/severity", key: alice, json: "{}").status == .forbidden)
            #expect(try await Self.refusals(store).count == 21)
        }
    }

    @Test("the refusals a full bucket left out are counted in the next record: none is lost from the count")
    func suppressedRefusalsAreCounted() async throws {
        let configure: @Sendable (inout ServerConfiguration) -> Void = {
            $0.adminKey = Self.root
            $0.refusalBurst = 3
            $0.refusalInterval = .seconds(3)
        }
        try await withApp(configure: configure) { store, client in
            let clock = ContinuousClock()
            let start = clock.now
            for _ in 0..<10 {
                #expect(try await client.call(.delete, "/api/cameras/x", key: nil).status == .unauthorized)
            }
            // At most the burst and one per interval that passed meanwhile (exact however slow
            // the machine is).
            let elapsed = (clock.now - start) / .seconds(3)
            #expect(try await Self.refusals(store).count <= 3 + Int(elapsed))
            try await Task.sleep(for: .seconds(3.5))  // at least one record's worth of refill
            #expect(try await client.call(.delete, "/api/cameras/x", key: nil).status == .unauthorized)
            // However fast the machine was: every refusal is either a record or counted in one
            // (the last one was recorded).
            let recorded = try await Self.refusals(store)
            #expect(recorded.reduce(0) { $0 + 1 + ($1.suppressed ?? 0) } == 11)
            #expect(recorded.allSatisfy { $0.action == "camera_deleted" && $0.resourceId == "x" })
        }
    }
}
