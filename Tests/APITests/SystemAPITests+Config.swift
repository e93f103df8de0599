import API
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import Projections
import Synthetic
import Testing
import VigilTesting

/// System config (`/api/system/config`): defaults, bounds, conflicts, and the aggregator following a change.
extension SystemAPITests {
    @Test("System config: defaults, a partial PATCH recorded as from/to of the changed fields, 422 on bad values")
    func config() async throws {
        try await withApp { store, client in
            let defaults = try await client.getJSON("/api/system/config")
            #expect(defaults["retention_days"] as? Int == 30)
            #expect(defaults["batch_window_seconds"] as? Int == 90)
            #expect(defaults["batch_idle_timeout_seconds"] as? Int == 30)
            #expect(defaults["detection_confidence_threshold"] as? Double == 0.5)
            #expect(defaults["fast_path_confidence_threshold"] as? Double == 0.9)
            #expect(defaults["fast_path_object_types"] as? [String] == ["person"])
            #expect(defaults["app_name"] as? String == "Vigil")

            let patched = try await client.send(
                .patch, "/api/system/config",
                json: #"{"retention_days": 14, "detection_confidence_threshold": 0.6, "batch_window_seconds": 90}"#)
            #expect(patched.status == .ok)
            let body = try json(patched)
            #expect(body["retention_days"] as? Int == 14)
            #expect(body["detection_confidence_threshold"] as? Double == 0.6)
            #expect(body["batch_idle_timeout_seconds"] as? Int == 30)
            // Read back right away.
            let read = try await client.getJSON("/api/system/config")
            #expect(read["retention_days"] as? Int == 14)
            #expect(read["detection_confidence_threshold"] as? Double == 0.6)
            // Only the fields that changed, with their values before and after.
            let stream = try #require(try await store.readStream(SystemSettings.stream))
            #expect(stream.events.map(\.type) == ["SystemConfigChanged"])
            let changes = try SystemConfigChanged.decode(stream.events[0].data).changes
            #expect(Set(changes.keys) == ["retention_days", "detection_confidence_threshold"])
            #expect(changes["retention_days"] == .init(from: .number(30), to: .number(14)))
            #expect(changes["detection_confidence_threshold"] == .init(from: .number(0.5), to: .number(0.6)))

            // Bad values: 422 naming each field; nothing written.
            let bad: [(String, [String])] = [
                (#"{"retention_days": 0}"#, ["body", "retention_days"]),
                (#"{"retention_days": 366}"#, ["body", "retention_days"]),
                (#"{"batch_window_seconds": 0}"#, ["body", "batch_window_seconds"]),
                (#"{"batch_idle_timeout_seconds": "30"}"#, ["body", "batch_idle_timeout_seconds"]),
                (#"{"detection_confidence_threshold": 1.5}"#, ["body", "detection_confidence_threshold"]),
                (#"{"fast_path_confidence_threshold": -0.1}"#, ["body", "fast_path_confidence_threshold"]),
                (#"{"fast_path_object_types": "person"}"#, ["body", "fast_path_object_types"]),
                (#"{"fast_path_object_types": ["person", ""]}"#, ["body", "fast_path_object_types", "1"]),
                (#"{"retension_days": 10}"#, ["body", "retension_days"]),
            ]
            for (json_, location) in bad {
                let response = try await client.send(.patch, "/api/system/config", json: json_)
                #expect(response.status == .unprocessableContent, "\(json_)")
                let issues = try #require(try json(response)["detail"] as? [[String: Any]])
                let locations = issues.map { ($0["loc"] as? [Any])?.map { "\($0)" } ?? [] }
                #expect(locations == [location], "\(json_)")
            }
            // Read-only fields sent back are ignored; an empty change writes nothing.
            let same = try await client.send(
                .patch, "/api/system/config", json: #"{"app_name": "Other", "version": "9", "retention_days": 14}"#)
            #expect(same.status == .ok)
            #expect(try json(same)["app_name"] as? String == "Vigil")
            #expect(try await store.readStream(SystemSettings.stream)?.version == 1)
        }
    }

    @Test("Config ranges: every bound accepted, one past it a 422 naming the field")
    func configBounds() async throws {
        try await withApp { store, client in
            let fields: [(name: String, low: String, high: String, below: String, above: String)] = [
                ("retention_days", "1", "365", "0", "366"),
                ("batch_window_seconds", "1", "86400", "0", "86401"),
                ("batch_idle_timeout_seconds", "1", "86400", "0", "86401"),
                ("detection_confidence_threshold", "0", "1", "-0.01", "1.01"),
                ("fast_path_confidence_threshold", "0", "1", "-0.01", "1.01"),
            ]
            var written = 0
            for field in fields {
                for value in [field.low, field.high] {
                    let response = try await client.send(
                        .patch, "/api/system/config", json: #"{"\#(field.name)": \#(value)}"#)
                    #expect(response.status == .ok, "\(field.name) = \(value)")
                    #expect((try json(response)[field.name] as? Double) == Double(value), "\(field.name) = \(value)")
                    written += 1
                }
                for value in [field.below, field.above] {
                    let response = try await client.send(
                        .patch, "/api/system/config", json: #"{"\#(field.name)": \#(value)}"#)
                    #expect(response.status == .unprocessableContent, "\(field.name) = \(value)")
                    let issues = try json(response)["detail"] as? [[String: Any]] ?? []
                    let locations = issues.map { ($0["loc"] as? [Any])?.map { "\($0)" } ?? [] }
                    #expect(locations == [["body", field.name]], "\(field.name) = \(value)")
                }
            }
            // fast_path_object_types: 50 entries of 50 characters at most.
            let fifty = (0..<50).map { #""type\#($0)""# }.joined(separator: ", ")
            #expect(
                try await client.send(.patch, "/api/system/config", json: #"{"fast_path_object_types": [\#(fifty)]}"#)
                    .status == .ok)
            written += 1
            let fiftyOne = fifty + #", "one-more""#
            #expect(
                try await client.send(
                    .patch, "/api/system/config", json: #"{"fast_path_object_types": [\#(fiftyOne)]}"#
                ).status == .unprocessableContent)
            let long = String(repeating: "x", count: 51)
            #expect(
                try await client.send(.patch, "/api/system/config", json: #"{"fast_path_object_types": ["\#(long)"]}"#)
                    .status == .unprocessableContent)
            // Each accepted PATCH changed a field: one event each, none for the refused ones.
            #expect(try await store.readStream(SystemSettings.stream)?.version == Int64(written))
        }
    }

    /// Two changes at once: the one that read the settings before the other committed is a 409
    /// (the stream's version is the expected one), and nothing of it is applied. Made
    /// deterministic by holding the stream's lock: the PATCH reads version 0, then waits for
    /// the lock while a change commits.
    @Test("The same thresholds PUT from many consoles at once: every one a 200, written once")
    func concurrentSeverityPuts() async throws {
        try await withApp { store, client in
            let thresholds = #"{"low_max": 20, "medium_max": 45, "high_max": 70}"#
            let statuses = try await statusesOfConcurrent(15) {
                try await client.send(.put, "/api/system/severity", json: thresholds).status
            }
            #expect(statuses == Array(repeating: 200, count: 15), "\(statuses)")
            #expect(try await IngestAPITests.count(store, type: SeverityThresholdsChanged.type) == 1)
        }
    }

    @Test("A PATCH that raced another change is a 409 and applies nothing; its retry applies")
    func configConflict() async throws {
        try await withApp { store, client in
            let (release, releaseContinuation) = AsyncStream.makeStream(of: Void.self)
            let (held, heldContinuation) = AsyncStream.makeStream(of: Void.self)
            let other = SystemConfigChanged(changes: [
                "batch_window_seconds": .init(from: .number(90), to: .number(120))
            ])
            async let holder: Void = store.transaction { transaction in
                try await transaction.append(
                    to: SystemSettings.stream, events: [try NewEvent(other, metadata: EventMetadata(actor: "test"))])
                heldContinuation.yield()
                for await _ in release { break }
            }
            for await _ in held { break }
            async let patch = client.send(.patch, "/api/system/config", json: #"{"retention_days": 7}"#)
            // The PATCH waits for the stream's lock.
            try await waitUntil("the PATCH waits for the lock", timeout: .seconds(30)) {
                let rows = try await store.client.query(
                    """
                    SELECT count(*)::int FROM pg_stat_activity
                    WHERE datname = current_database() AND wait_event_type = 'Lock'
                    """, logger: store.logger)
                for try await count in rows.decode(Int.self) { return count > 0 }
                return false
            }
            releaseContinuation.yield()
            try await holder
            let refused = try await patch
            #expect(refused.status == .conflict, "\(String(buffer: refused.body))")
            #expect(try json(refused)["detail"] as? String == "System settings were changed by another request; retry")
            let read = try await client.getJSON("/api/system/config")
            #expect(read["retention_days"] as? Int == 30)
            #expect(read["batch_window_seconds"] as? Int == 120)
            #expect(try await store.readStream(SystemSettings.stream)?.version == 1)

            let retried = try await client.send(.patch, "/api/system/config", json: #"{"retention_days": 7}"#)
            #expect(retried.status == .ok)
            #expect(try json(retried)["retention_days"] as? Int == 7)
            #expect(try json(retried)["batch_window_seconds"] as? Int == 120)
            #expect(try await store.readStream(SystemSettings.stream)?.version == 2)
        }
    }

    @Test("The batch aggregator follows a config change from its place in the log, without a restart")
    func aggregatorFollowsConfig() async throws {
        try await withApp(configure: { $0.settings.config.batchIdleTimeoutSeconds = 300 }) { store, client in
            let camera = try await client.send(
                .post, "/api/cameras", json: #"{"name": "Front Door", "folder_path": "/export/front_door"}"#)
            #expect(camera.status == .created)
            func detect(_ type: String, _ confidence: Double, _ second: Int) -> String {
                IngestAPITests.detection(
                    camera: "front_door", object: type, confidence: confidence,
                    at: "2026-11-23T10:00:\(String(format: "%02d", second))Z")
            }
            // A car at 0.95 is batched (not the fast path): one open event, not fast path.
            #expect(try await client.send(.post, "/api/detections", json: detect("car", 0.95, 0)).status == .created)
            try await client.waitForEvents(1)
            let first = try #require(try await PipelineTests.events(client).first)
            #expect(first["is_fast_path"] as? Bool == false)

            let patched = try await client.send(
                .patch, "/api/system/config",
                json: #"{"fast_path_object_types": ["person", "car"], "detection_confidence_threshold": 0.8}"#)
            #expect(patched.status == .ok)
            // Now a car at 0.95 is an event of its own at once; a dog at 0.7 is below the new
            // threshold, a bicycle at 0.85 above it (batched).
            #expect(try await client.send(.post, "/api/detections", json: detect("car", 0.95, 5)).status == .created)
            let dog = try await client.send(.post, "/api/detections", json: detect("dog", 0.7, 6))
            let bicycle = try await client.send(.post, "/api/detections", json: detect("bicycle", 0.85, 7))
            let dogID = try #require(try json(dog)["id"] as? Int)
            let bicycleID = try #require(try json(bicycle)["id"] as? Int)
            try await client.waitForEvents(2)
            let events = try await PipelineTests.events(client)
            #expect(events.filter { $0["is_fast_path"] as? Bool == true }.count == 1)
            // The open batch (the aggregator's state) takes the bicycle and not the dog.
            var open: [Int] = []
            try await waitUntil("the open batch has the bicycle") {
                open = []
                let rows = try await store.client.query(
                    "SELECT detection_id FROM open_batch_detections",
                    logger: testLogger)
                for try await id in rows.decode(Int64.self) { open.append(Int(id)) }
                return open.contains(bicycleID)
            }
            #expect(!open.contains(dogID))
            #expect(open.count == 2)
        }
    }
}
