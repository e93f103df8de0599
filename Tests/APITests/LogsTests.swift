import Domain
import EventStore
import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import PostgresNIO
import Projections
import Testing
import VigilTesting

@testable import API

/// `/api/logs` through the real router: the server's own errors recorded, browsers' entries
/// validated all or nothing, the seed's filters, cursor pages and stats.
@Suite struct LogsTests {
    static let root = AuthTests.root

    static func logs(_ client: any TestClientProtocol, _ query: String) async throws -> [String: Any] {
        try json(try await client.call(.get, "/api/logs?\(query)", key: Self.root))
    }

    @Test("A projection that parks a poison event says so in /api/logs, with its details")
    func serverErrorsAreRecorded() async throws {
        try await withApp(configure: { $0.adminKey = Self.root }) { store, client in
            let poisonID = UUID()
            let poison = #"{"id": 900002, "camera_id": "porch", "detected_at": "0000-01-01T00:00:00Z"}"#
            try await store.append(
                to: DetectionRecorded.stream(cameraId: "porch"),
                events: [NewEvent(id: poisonID, type: DetectionRecorded.type, data: poison)])
            var records: [[String: Any]] = []
            try await waitUntil("the parking is in /api/logs") {
                records =
                    try await Self.logs(client, "level=error&component=Projections&search=parked")["logs"]
                    as? [[String: Any]] ?? []
                return !records.isEmpty
            }
            let record = try #require(records.first)
            #expect(record["message"] as? String == "projection parked an event it cannot apply")
            #expect(record["level"] as? String == "ERROR" && record["source"] as? String == "backend")
            let extra = try #require(record["extra"] as? [String: Any])
            #expect(extra["event_id"] as? String == poisonID.uuidString)
            #expect(extra["type"] as? String == DetectionRecorded.type)
            #expect(extra["projection"] is String && extra["error"] is String)
            let id = try #require(record["id"] as? Int)
            let one = try json(try await client.call(.get, "/api/logs/\(id)", key: Self.root))
            #expect(one["message"] as? String == record["message"] as? String)
            // Info and below are not recorded (the default level is warning).
            #expect(try await Self.logs(client, "level=INFO")["count"] as? Int == 0)
        }
    }

    @Test("A request the server fails on (a 500) is in /api/logs, with its method and path")
    func unhandledErrorsAreRecorded() async throws {
        try await withApp(configure: { $0.adminKey = Self.root }) { store, client in
            // A read model's table gone from under the API: its route can only fail.
            try await store.client.query(
                "DROP TABLE projection_alert_rules_1.alert_rules CASCADE", logger: testLogger)
            let failed = try await client.call(.get, "/api/alerts/rules", key: Self.root)
            #expect(failed.status == .internalServerError)
            #expect(try json(failed)["detail"] as? String == "Internal server error")
            var records: [[String: Any]] = []
            try await waitUntil("the 500 is in /api/logs") {
                records =
                    try await Self.logs(client, "level=error&component=API&search=unhandled")["logs"]
                    as? [[String: Any]] ?? []
                return !records.isEmpty
            }
            let extra = try #require(records.first?["extra"] as? [String: Any])
            #expect(extra["method"] as? String == "GET" && extra["path"] as? String == "/api/alerts/rules")
            #expect((extra["error"] as? String)?.contains("alert_rules") == true, "\(extra)")
        }
    }

    @Test("Browsers' entries: one, an array or entries, all or nothing; filters, pages, stats, access")
    func frontendEntries() async throws {
        try await withApp(configure: { $0.adminKey = Self.root }) { _, client in
            let viewer = try await client.issueKey("vera", role: .viewer, adminKey: Self.root)
            let agent: HTTPFields = [.userAgent: "Mozilla/5.0 (test)"]
            func post(_ path: String, _ body: String, key: String? = nil) async throws -> TestResponse {
                try await client.call(.post, path, key: key ?? viewer, json: body, headers: agent)
            }
            let single = try await post(
                "/api/logs/frontend",
                #"{"level": "ERROR", "message": "Failed to load 100% of the Dashboard", "component": "Dashboard", "#
                    + #""context": {"userId": "123", "action": "load"}, "url": "/dashboard", "#
                    + #""timestamp": "2026-11-29T08:00:00Z"}"#)
            #expect(single.status == .created)
            #expect(try json(single)["count"] as? Int == 1)
            #expect(try json(single)["success"] as? Bool == true)
            let array = try await post(
                "/api/logs/frontend",
                #"[{"level": "info", "message": "Page loaded", "component": "App"}, "#
                    + #"{"level": "WARNING", "message": "Slow render", "component": "EventTimeline", "#
                    + #""user_agent": "Other/1.0"}]"#)
            #expect(array.status == .created)
            #expect(try json(array)["count"] as? Int == 2)
            let batch = try await post(
                "/api/logs/frontend/batch",
                #"{"entries": [{"level": "CRITICAL", "message": "API call failed", "component": "ApiClient", "#
                    + #""context": {"status": 500}}]}"#)
            #expect(batch.status == .created)
            #expect(try json(batch)["count"] as? Int == 1)

            // Refused, all or nothing, with what is wrong where.
            let tooMany =
                "[" + Array(repeating: #"{"level": "INFO", "message": "m"}"#, count: 101).joined(separator: ",") + "]"
            let refusals: [(String, String, [String])] = [
                ("/api/logs/frontend", tooMany, ["body"]),
                ("/api/logs/frontend", "[]", ["body"]),
                ("/api/logs/frontend/batch", #"{"entries": []}"#, ["body", "entries"]),
                ("/api/logs/frontend/batch", #"[{"level": "INFO", "message": "m"}]"#, ["body"]),
                (
                    "/api/logs/frontend/batch",
                    #"{"entries": [{"level": "INFO", "message": "ok"}, {"level": "LOUD", "message": "m"}]}"#,
                    ["body", "entries", "1", "level"]
                ),
                ("/api/logs/frontend", #"{"level": "INFO", "message": "nul \u0000 here"}"#, ["body", "message"]),
                ("/api/logs/frontend", #"{"level": "INFO", "message": ""}"#, ["body", "message"]),
                ("/api/logs/frontend", #"{"level": "INFO"}"#, ["body", "message"]),
                ("/api/logs/frontend", #"{"level": "INFO", "message": "m", "mood": "sad"}"#, ["body", "mood"]),
                (
                    "/api/logs/frontend", #"{"level": "INFO", "message": "m", "timestamp": "0001-01-01T00:00:00Z"}"#,
                    ["body", "timestamp"]
                ),
                ("/api/logs/frontend", #"{"level": "INFO", "message": "m", "context": [1]}"#, ["body", "context"]),
            ]
            for (path, body, location) in refusals {
                let response = try await post(path, body)
                #expect(response.status == .unprocessableContent, "\(body.prefix(80))")
                let issues = try #require(try json(response)["detail"] as? [[String: Any]], "\(body.prefix(80))")
                #expect(
                    issues.contains { ($0["loc"] as? [Any])?.map { "\($0)" } == location },
                    "\(body.prefix(80)): \(issues)")
            }
            #expect(try await Self.logs(client, "source=frontend")["count"] as? Int == 4)

            // Filters.
            let errors = try #require(
                try await Self.logs(client, "source=frontend&level=error")["logs"] as? [[String: Any]])
            #expect(errors.count == 1)
            let error = try #require(errors.first)
            #expect(error["component"] as? String == "Dashboard" && error["url"] as? String == "/dashboard")
            #expect(error["user_agent"] as? String == "Mozilla/5.0 (test)")
            #expect(error["timestamp"] as? String == "2026-11-29T08:00:00.000000Z")
            #expect((error["extra"] as? [String: Any])?["action"] as? String == "load")
            #expect(try await Self.logs(client, "search=100%25")["count"] as? Int == 1)  // % is literal
            #expect(try await Self.logs(client, "search=%25")["count"] as? Int == 1)
            #expect(try await Self.logs(client, "search=page%20LOADED")["count"] as? Int == 1)
            #expect(try await Self.logs(client, "component=EventTimeline")["count"] as? Int == 1)
            let slow = try await Self.logs(client, "component=EventTimeline")["logs"] as? [[String: Any]]
            #expect(slow?.first?["user_agent"] as? String == "Other/1.0")
            #expect(
                try await Self.logs(
                    client, "source=frontend&start_date=2026-11-29T07:00:00Z&end_date=2026-11-29T09:00:00Z")[
                        "count"] as? Int == 1)
            for bad in ["level=LOUD", "source=mars", "limit=0"] {
                #expect(
                    try await client.call(.get, "/api/logs?\(bad)", key: Self.root).status == .unprocessableContent,
                    "\(bad)")
            }

            // Cursor pages, newest first, no repeats.
            let first = try await Self.logs(client, "source=frontend&limit=3")
            #expect(first["count"] as? Int == 4 && first["has_more"] as? Bool == true)
            let cursor = try #require(first["next_cursor"] as? String)
            let second = try await Self.logs(client, "source=frontend&limit=3&cursor=\(cursor)")
            let ids = ((first["logs"] as? [[String: Any]] ?? []) + (second["logs"] as? [[String: Any]] ?? []))
                .compactMap { $0["id"] as? Int }
            #expect(ids.count == 4 && Set(ids).count == 4)
            #expect(second["has_more"] as? Bool == false)

            // Today's stats (the dashboard entry is dated 08:00 today only if today is the 29th).
            let stats = try json(try await client.call(.get, "/api/logs/stats?source=frontend", key: Self.root))
            let byLevel = try #require(stats["by_level"] as? [String: Int])
            #expect(stats["total_today"] as? Int == byLevel.values.reduce(0, +))
            #expect(byLevel["WARNING"] == 1 && byLevel["CRITICAL"] == 1 && byLevel["INFO"] == 1)
            #expect(stats["warnings_today"] as? Int == 1)
            #expect((stats["errors_today"] as? Int ?? 0) >= 1)
            #expect(stats["by_component"] is [String: Int] && stats["top_component"] is String)

            // Access: any key may send, only admin reads.
            #expect(try await client.call(.get, "/api/logs", key: viewer).status == .forbidden)
            #expect(try await client.call(.get, "/api/logs/stats", key: viewer).status == .forbidden)
            #expect(try await client.call(.get, "/api/logs/1", key: viewer).status == .forbidden)
            #expect(try await client.call(.post, "/api/logs/frontend", key: nil, json: "{}").status == .unauthorized)
            #expect(try await client.call(.get, "/api/logs/999999", key: Self.root).status == .notFound)
        }
    }
}

/// The recorder while the database can't take records: they wait, what the buffer can't hold is
/// counted, and the loss is recorded once the database is back.
@Suite struct LogRecorderTests {
    @Test("Records wait for the database; overflow is counted and reported, never dropped silently")
    func recordsWaitAndOverflowIsReported() async throws {
        try await withScratchDatabase { store, _ in
            let logs = OperationalLogs(database: ReadDatabase(client: store.client, logger: testLogger))
            let recorder = LogRecorder(
                logs: logs, level: .warning, retention: .seconds(3600), logger: testLogger, capacity: 3)
            var logger = Logger(label: "vigil.recorder-test")
            logger.handler = recorder.handler(wrapping: SwiftLogNoOpLogHandler())
            func count(_ query: String) async throws -> Int64 {
                try await logs.list(
                    LogFilterParameters(search: query), page: PageBounds(limit: 100, offset: 0, after: nil)
                ).total
            }

            // The table is away: a flush fails and keeps what it had.
            try await store.client.query(
                "ALTER TABLE operational_logs RENAME TO operational_logs_away", logger: testLogger)
            for n in 0..<5 { logger.warning("warning \(n)", metadata: ["camera_id": "porch", "n": "\(n)"]) }
            logger.info("not recorded")
            await recorder.flush()
            await recorder.flush()
            try await store.client.query(
                "ALTER TABLE operational_logs_away RENAME TO operational_logs", logger: testLogger)

            await recorder.flush()
            #expect(try await count("warning") == 3)
            let lost = try await logs.list(
                LogFilterParameters(search: "were not kept"), page: PageBounds(limit: 10, offset: 0, after: nil))
            #expect(lost.total == 1)
            #expect(lost.items.first?.contains(#""dropped": 2"#) == true, "\(lost.items)")
            #expect(try await count("not recorded") == 0)
            let first = try await logs.list(
                LogFilterParameters(cameraId: "porch"), page: PageBounds(limit: 10, offset: 0, after: nil))
            #expect(first.total == 3)
            #expect(first.items.allSatisfy { $0.contains(#""component" : "APITests""#) }, "\(first.items)")

            // A NUL in a message or its metadata is stored as U+FFFD, not refused.
            logger.error("nul \u{0} inside", metadata: ["x": "a\u{0}b"])
            await recorder.flush()
            #expect(try await count("inside") == 1)
        }
    }
}
