import Archive
import Domain
import EventStore
import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing
import VigilTesting

@testable import API

/// A store moved as the README says (`vigil export`, `vigil import` into a new database, then
/// `vigil serve`) goes on where the old one stopped: its reactors don't decide its history
/// again, and new detections become security events.
@Suite struct MovedStoreTests {
    /// Webhook deliveries in the outbox (queued, retrying or parked).
    static func queuedDeliveries(_ store: EventStore) async throws -> Int {
        let rows = try await store.client.query("SELECT count(*) FROM alert_webhooks", logger: store.logger)
        for try await n in rows.decode(Int64.self) { return Int(n) }
        return 0
    }

    @Test("Exported, imported and served: new detections become events; the history is not decided or sent again")
    func movedStoreGoesOn() async throws {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("vigil-moved-\(UUID().uuidString).ndjson.lz4").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pipeline = PipelineTests.configure(prefix: PipelineTests.prefix(), redis: false)
        // Webhooks to a port nothing listens on: a delivery queued stays queued (attempts, then
        // parked), so what the outbox holds is what the rule engine queued.
        let webhooks = WebhookTests.configure("http://127.0.0.1:9/hook")
        let configure: @Sendable (inout ServerConfiguration) -> Void = {
            pipeline(&$0)
            webhooks(&$0)
        }
        try await withApp(configure: configure) { store, client in
            try await IngestAPITests.register(client, "porch")
            let batch = "[\(IngestAPITests.detection(object: "car")), \(IngestAPITests.detection(object: "dog"))]"
            #expect(try await client.send(.post, "/api/detections/batch", json: batch).status == .created)
            try await waitUntil("the batch closed") {
                let events = try await PipelineTests.events(client)
                return events.count == 1 && events.allSatisfy { $0["ended_at"] is String }
            }
            _ = try await AlertsTests.rule(client, #"{"name": "all", "channels": ["webhook"]}"#)
            let event = try #require(try await PipelineTests.events(client).first?["id"] as? Int)
            try await AlertsTests.analyse(client, event, score: 80)
            try await AlertsTests.settle(store)
            #expect(try await AlertsTests.alerts(client).count == 1)
            #expect(try await Self.queuedDeliveries(store) == 1)
            _ = try await LogExporter(store: store).export(to: path)
        }
        try await withScratchDatabase { target, scratch in
            _ = try await LogImporter(store: target).importArchive(from: path)
            let opened = try await IngestAPITests.count(target, type: SecurityEventOpened.type)
            #expect(opened == 1)
            try await runApp(on: scratch, configure: configure) { client in
                let posted = try await client.send(
                    .post, "/api/detections", json: IngestAPITests.detection(object: "bicycle"))
                #expect(posted.status == .created)
                try await waitUntil("the new detection's batch is an event of its own") {
                    let events = try await PipelineTests.events(client)
                    return events.count == 2 && events.allSatisfy { $0["ended_at"] is String }
                }
                #expect(try await IngestAPITests.count(target, type: SecurityEventOpened.type) == opened + 1)
                #expect(try await PipelineTests.status(target, "batch_aggregator").lastError == nil)
                // The history's alert is in the log, not raised again, and its webhook (sent,
                // or given up on, where it was raised) is not queued again.
                try await AlertsTests.settle(target)
                #expect(try await AlertsTests.alerts(client).count == 1)
                #expect(try await IngestAPITests.count(target, type: AlertTriggered.type) == 1)
                #expect(try await Self.queuedDeliveries(target) == 0)
                #expect(try await PipelineTests.status(target, "alert_engine").lastError == nil)
            }
        }
    }
}
