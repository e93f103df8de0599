import API
import Archive
import Domain
import EventStore
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Projections
import Testing
import VigilTesting

/// Retention (`POST /api/system/cleanup`): what a dry run plans is what a run archives, the
/// segment holds exactly the events that left the table, the read models forget them by a
/// rebuild, an archived stream takes no more events, and every run is audited.
@Suite struct RetentionTests {
    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "vigil-retention-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A fast-path person at `time` on front_door: a security event of its own at once.
    static func person(at time: Date) -> String {
        IngestAPITests.detection(
            camera: "front_door", object: "person", confidence: 0.95, at: Timestamp.format(time))
    }

    /// Waits until every projection and reactor has applied the whole log: retention never
    /// takes an event past the slowest one's checkpoint (under load a dry run right after a
    /// write planned nothing while one runner lagged).
    static func settled(_ store: EventStore) async throws {
        let names = try await store.projectionStatuses().map(\.name)
        let caughtUp = try await store.waitForProjections(
            names, toReach: try await store.head(), timeout: .seconds(120))
        #expect(caughtUp)
    }

    /// Waits until no read model is rebuilding and every one of `names` has a newer generation
    /// than in `before`.
    static func rebuilt(_ store: EventStore, _ names: [String], after before: [String: Int32]) async throws {
        try await waitUntil("the read models are rebuilt without the archived events", timeout: .seconds(120)) {
            let statuses = try await store.projectionStatuses()
            return statuses.allSatisfy { $0.rebuild == nil }
                && names.allSatisfy { name in
                    statuses.first { $0.name == name }.map { $0.generation > (before[name] ?? 0) } ?? false
                }
        }
    }

    @Test("A dry run plans what the run archives; the segment holds what left; read models forget it")
    func archivesAndForgets() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await withApp(configure: { $0.archiveDirectory = directory }) { store, client in
            try await IngestAPITests.register(client, "front_door")
            _ = try await AlertsTests.rule(client, #"{"name": "all", "channels": [], "cooldown_seconds": 0}"#)
            let old = Date().addingTimeInterval(-40 * 86_400)
            let oldEvent = try await AlertsTests.event(client, count: 1, detection: Self.person(at: old))
            let newEvent = try await AlertsTests.event(client, count: 2, detection: Self.person(at: Date()))
            try await AlertsTests.analyse(client, oldEvent, score: 80)
            try await AlertsTests.analyse(client, newEvent, score: 80)
            let reviewed = try await client.send(.patch, "/api/events/\(oldEvent)", json: #"{"reviewed": true}"#)
            #expect(reviewed.status == .ok, "\(String(buffer: reviewed.body))")
            try await AlertsTests.settle(store)
            #expect(try await AlertsTests.alerts(client).count == 2)
            let logBefore = try await IngestAPITests.count(store, type: DetectionRecorded.type)

            // The dry run: the old event, its detection and its alert; nothing changes.
            try await Self.settled(store)
            let dry = try await client.send(.post, "/api/system/cleanup?dry_run=true")
            #expect(dry.status == .ok, "\(String(buffer: dry.body))")
            let plan = try json(dry)
            #expect(plan["dry_run"] as? Bool == true)
            #expect(plan["retention_days"] as? Int == 30)
            #expect(plan["events_deleted"] as? Int == 1)
            #expect(plan["detections_deleted"] as? Int == 1)
            #expect(plan["alerts_deleted"] as? Int == 1)
            #expect(plan["archive"] is NSNull)
            // The event's stream (opened, closed, analyzed, reviewed), the alert's, the detection.
            let planned = try #require(plan["log_events_archived"] as? Int)
            #expect(planned >= 5)
            #expect(try await IngestAPITests.count(store, type: DetectionRecorded.type) == logBefore)
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
            // A body says the same as the query; both at once must agree.
            let bodyDry = try await client.send(.post, "/api/system/cleanup", json: #"{"dry_run": true}"#)
            #expect(try json(bodyDry)["log_events_archived"] as? Int == planned)
            let disagree = try await client.send(
                .post, "/api/system/cleanup?dry_run=false", json: #"{"dry_run": true}"#)
            #expect(disagree.status == .unprocessableContent)
            let extra = try await client.send(.post, "/api/system/cleanup", json: #"{"dry_run": true, "days": 3}"#)
            #expect(extra.status == .unprocessableContent)
            let null = try await client.send(.post, "/api/system/cleanup", json: #"{"dry_run": null}"#)
            #expect(null.status == .unprocessableContent)

            // What a failed run left in the folder is removed by the next.
            let orphan = (directory as NSString).appendingPathComponent("retention-0-deadbeef.ndjson.lz4")
            #expect(FileManager.default.createFile(atPath: orphan, contents: Data("x".utf8)))

            let before = Dictionary(
                uniqueKeysWithValues: try await store.projectionStatuses().map { ($0.name, $0.generation) })
            let response = try await client.send(.post, "/api/system/cleanup")
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let done = try json(response)
            #expect(done["dry_run"] as? Bool == false)
            #expect(done["events_deleted"] as? Int == 1 && done["log_events_archived"] as? Int == planned)
            let archive = try #require(done["archive"] as? [String: Any])
            let name = try #require(archive["segment"] as? String)
            let path = (directory as NSString).appendingPathComponent(name)
            #expect(try RetentionArchive.sha256(of: path) == archive["sha256"] as? String)
            #expect(!FileManager.default.fileExists(atPath: orphan))
            let rebuilding = try #require(done["rebuilding"] as? [String])
            #expect(Set(["security_events", "detections", "alerts"]).isSubset(of: Set(rebuilding)))
            #expect(!rebuilding.contains("audit"))

            // The segment: a vigil-log archive of exactly the events that left the table.
            let (header, ids) = try Self.read(segment: path)
            #expect(header.events == planned && ids.count == planned && header.cutoff != nil)
            let left = try await store.client.query(
                "SELECT count(*) FROM events WHERE event_id = ANY(\(ids)::uuid[])", logger: store.logger
            ).decode(Int64.self).first { _ in true }
            #expect(left == 0)
            #expect(try await IngestAPITests.count(store, type: DetectionRecorded.type) == logBefore - 1)
            let manifest = try JSONSerialization.jsonObject(
                with: Data(
                    contentsOf: URL(fileURLWithPath: (directory as NSString).appendingPathComponent("manifest.json"))))
            let segments = try #require((manifest as? [String: Any])?["segments"] as? [[String: Any]])
            #expect(segments.map { $0["name"] as? String } == [name])
            // `vigil import` reads a segment as it reads an export.
            try await withScratchDatabase { restored, _ in
                let summary = try await LogImporter(store: restored).importArchive(from: path)
                #expect(summary.events == planned)
                #expect(try await IngestAPITests.count(restored, type: SecurityEventReviewed.type) == 1)
                // Its id sequences past the ids it holds: the next event is not a second `oldEvent`.
                let next = try await IDSequence.securityEvents.take(1, from: restored.client, logger: restored.logger)
                #expect(next.first.map { $0 > Int64(oldEvent) } == true, "\(next) after \(oldEvent)")
            }

            // Right after the run (the read models may still hold it) a write to it is a 404 too.
            let early = try await client.send(.patch, "/api/events/\(oldEvent)", json: #"{"notes": "late"}"#)
            #expect(early.status == .notFound, "\(String(buffer: early.body))")
            // Its stream keeps its version, not its events: a 404 that says where they went.
            let stream = try await client.send(.get, "/api/streams/secevent-\(oldEvent)")
            #expect(stream.status == .notFound, "\(String(buffer: stream.body))")
            #expect(
                try json(stream)["detail"] as? String
                    == "Stream secevent-\(oldEvent) was archived by retention: its events are in the archive's segments"
            )

            // The read models, rebuilt, hold only the kept event, its detection and its alert.
            try await Self.rebuilt(store, rebuilding, after: before)
            let events = try await client.getJSON("/api/events?limit=100")["events"] as? [[String: Any]] ?? []
            #expect(events.compactMap { $0["id"] as? Int } == [newEvent])
            #expect(try await client.getJSON("/api/detections?limit=100")["count"] as? Int == 1)
            #expect(try await AlertsTests.alerts(client).map { $0["event_id"] as? Int } == [newEvent])
            #expect(try await client.send(.get, "/api/events/\(oldEvent)").status == .notFound)
            // Its history and analyses too (once 200 with empty lists: the stream's events are gone).
            for part in ["history", "analyses"] {
                #expect(try await client.send(.get, "/api/events/\(oldEvent)/\(part)").status == .notFound, "\(part)")
            }

            // An archived stream takes no more events.
            let refused = try await client.send(.patch, "/api/events/\(oldEvent)", json: #"{"notes": "late"}"#)
            #expect(refused.status == .notFound)
            await #expect(throws: AppendError.streamArchived(stream: SecurityEvents.stream(Int64(oldEvent)))) {
                let event = SecurityEventReviewed(id: Int64(oldEvent), reviewed: true, notes: nil)
                _ = try await store.append(
                    to: event.stream, events: [try NewEvent(event, metadata: EventMetadata(actor: "test"))])
            }

            // The audit trail keeps the archived review; its rebuild replays the segment before
            // the table and gives the same trail. Without the segment it can't: it says why.
            let trail = try await Self.trail(client)
            #expect(trail.contains { $0.contains(#""resource_id":"\#(oldEvent)""#) && $0.contains("event_reviewed") })
            let moved = path + ".away"
            try FileManager.default.moveItem(atPath: path, toPath: moved)
            let auditProjection = try #require(ReadModels.named("audit"))
            let generations = Dictionary(
                uniqueKeysWithValues: try await store.projectionStatuses().map { ($0.name, $0.generation) })
            try await store.requestRebuild(of: auditProjection)
            try await waitUntil("the audit rebuild says the segment is missing") {
                let status = try await store.projectionStatuses().first { $0.name == "audit" }
                return status?.rebuild?.lastError?.contains("missing") == true
            }
            try FileManager.default.moveItem(atPath: moved, toPath: path)
            try await Self.rebuilt(store, ["audit"], after: generations)
            #expect(try await Self.trail(client) == trail)

            // The run is in the audit trail with its actor; a second run finds nothing.
            let audit = try await client.getJSON("/api/audit?action=cleanup_executed&status=success")
            #expect(audit["count"] as? Int == 1)
            let again = try json(try await client.send(.post, "/api/system/cleanup"))
            #expect(again["events_deleted"] as? Int == 0 && again["archive"] is NSNull)
            #expect((again["rebuilding"] as? [String])?.isEmpty == true)
            let status = try await client.getJSON("/api/system/cleanup/status")
            #expect(status["segments"] as? Int == 1 && status["archived_log_events"] as? Int == planned)
            #expect((status["last_segment"] as? [String: Any])?["name"] as? String == name)
        }
    }

    /// A store moved by export and import keeps the archive folder its log names, though its
    /// `log_archive_segments` is empty: the next run must not take those files for a failed
    /// run's leftovers (they can be the only copy of what they hold).
    @Test("A segment the log names stays without a row for it (a moved store's); a failed run's leftovers go")
    func segmentsTheLogNamesStay() async throws {
        try await withScratchDatabase { store, _ in
            let directory = try Self.temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let named = "retention-20260101T000000Z-1-9.ndjson.lz4"
            let applied = RetentionApplied(
                cutoff: Date(timeIntervalSince1970: 1_790_000_000), retentionDays: 30, segment: named,
                sha256: String(repeating: "0", count: 64), logEvents: 9, securityEvents: 1, detections: 1, alerts: 0,
                operationalLogs: 0)
            _ = try await store.append(
                to: applied.stream, events: [try NewEvent(applied, metadata: EventMetadata(actor: "tests"))])
            let leftovers = ["retention-0-deadbeef.ndjson.lz4", "retention-1-cafe.ndjson.lz4.partial"]
            for file in [named] + leftovers {
                let path = (directory as NSString).appendingPathComponent(file)
                #expect(FileManager.default.createFile(atPath: path, contents: Data("x".utf8)))
            }
            let removed = try await RetentionArchive(store: store, directory: directory).removeOrphans()
            #expect(removed == leftovers)
            #expect(FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(named)))
        }
    }

    @Test("One run at a time, whichever instance: a second is a 409 and leaves the folder alone")
    func oneRunAtATime() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await withApp(configure: { $0.archiveDirectory = directory }) { store, client in
            try await IngestAPITests.register(client, "front_door")
            _ = try await AlertsTests.event(
                client, count: 1, detection: Self.person(at: Date().addingTimeInterval(-40 * 86_400)))
            try await Self.settled(store)
            // A file like the one a run is writing (no record yet) must survive a refused run.
            let writing = (directory as NSString).appendingPathComponent("retention-1-cafebabe.ndjson.lz4.partial")
            #expect(FileManager.default.createFile(atPath: writing, contents: Data("x".utf8)))
            try await store.client.withConnection { connection in
                // What another instance's run holds for its transaction.
                try await connection.query("SELECT pg_advisory_lock(\(EventStore.retentionLock))", logger: store.logger)
                let refused = try await client.send(.post, "/api/system/cleanup")
                #expect(refused.status == .conflict, "\(String(buffer: refused.body))")
                #expect(FileManager.default.fileExists(atPath: writing))
                try await connection.query(
                    "SELECT pg_advisory_unlock(\(EventStore.retentionLock))", logger: store.logger)
            }
            #expect(try await IngestAPITests.count(store, type: SecurityEventOpened.type) == 1)
            let done = try await client.send(.post, "/api/system/cleanup")
            #expect(try json(done)["events_deleted"] as? Int == 1, "\(String(buffer: done.body))")
            #expect(!FileManager.default.fileExists(atPath: writing))
            #expect(try await IngestAPITests.count(store, type: SecurityEventOpened.type) == 0)
        }
    }

    @Test("Without an archive folder only a dry run: a run is a 409 and nothing leaves the log")
    func noArchiveNoCleanup() async throws {
        try await withApp { store, client in
            try await IngestAPITests.register(client, "front_door")
            let old = Date().addingTimeInterval(-40 * 86_400)
            _ = try await AlertsTests.event(client, count: 1, detection: Self.person(at: old))
            try await Self.settled(store)
            let dry = try json(try await client.send(.post, "/api/system/cleanup?dry_run=1"))
            #expect(dry["events_deleted"] as? Int == 1)
            let refused = try await client.send(.post, "/api/system/cleanup")
            #expect(refused.status == .conflict)
            #expect(try json(refused)["detail"] as? String != nil)
            #expect(try await IngestAPITests.count(store, type: SecurityEventOpened.type) == 1)
            #expect(try await client.getJSON("/api/system/cleanup/status")["archive_configured"] as? Bool == false)
        }
    }

    /// The whole audit trail, each entry as sorted JSON.
    static func trail(_ client: any TestClientProtocol) async throws -> [String] {
        let logs = try #require(try await client.getJSON("/api/audit?limit=100")["logs"] as? [[String: Any]])
        return try logs.map {
            String(decoding: try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]), as: UTF8.self)
        }
    }

    /// A segment's header and the ids of its events, read through the archive's own reader.
    static func read(segment path: String) throws -> (LogArchive.Header, [UUID]) {
        let reader = try LZ4FrameReader(path: path)
        var lines = LineReader { try reader.next() }
        let first = try #require(try lines.next())
        let header = try JSONDecoder().decode(LogArchive.Header.self, from: Data(first))
        var ids: [UUID] = []
        while let line = try lines.next() {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
            if let id = object["event_id"] as? String { ids.append(try #require(UUID(uuidString: id))) }
        }
        return (header, ids)
    }
}
