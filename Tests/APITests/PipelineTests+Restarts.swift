import API
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Pipeline
import PostgresNIO
import Projections
import Redis
import Synthetic
import Testing
import VigilTesting

/// The pipeline across a restart of the server: a batch open at the restart closes once, on the settings in force.
extension PipelineTests {
    /// A PATCHed idle time or window outlives the server that took it: the next server, started
    /// with defaults of an hour and a real clock, closes the batch the first one left open after
    /// the PATCHed 2 s. The first server's clock stands still, so it can't close it.
    @Test(arguments: ["batch_idle_timeout_seconds", "batch_window_seconds"])
    func aPatchedBatchTimeCarriesAcrossARestartOnARealClock(_ setting: String) async throws {
        try await withScratchDatabase { store, database in
            let configure = Self.configure(prefix: Self.prefix(), redis: false)
            let frozen = Date()
            try await runApp(
                on: database,
                configure: {
                    configure(&$0)
                    // Defaults no run could reach (idle time and window): a close at all shows
                    // the PATCHed 2 s (of `setting`) applied.
                    $0.settings.config.batchIdleTimeoutSeconds = 3_600
                    $0.settings.config.batchWindowSeconds = 3_600
                    $0.batchClock = { frozen }
                }
            ) { client in
                let patched = try await client.send(
                    .patch, "/api/system/config", json: #"{"\#(setting)": 2}"#)
                #expect(patched.status == .ok)
                try await IngestAPITests.register(client, "porch")
                #expect(
                    try await client.send(.post, "/api/detections", json: IngestAPITests.detection()).status == .created
                )
                try await waitUntil("the batch is open") {
                    let events = try await Self.events(client)
                    return events.count == 1 && events[0]["ended_at"] is NSNull
                }
            }
            #expect(try await Self.closes(store).isEmpty)
            try await runApp(
                on: database,
                configure: {
                    configure(&$0)
                    $0.settings.config.batchIdleTimeoutSeconds = 3_600
                    $0.settings.config.batchWindowSeconds = 3_600
                }
            ) { client in
                // Closed within a minute, not an hour: the PATCHed value from the log was used
                // (no bound on the time itself: a loaded machine took 24 s to restart and close).
                try await waitUntil("the batch closed", timeout: .seconds(60)) {
                    try await Self.closes(store).count == 1
                }
                #expect(try await client.getJSON("/api/system/config")[setting] as? Int == 2)
                #expect(try await Self.openBatches(store) == 0)
            }
        }
    }

    /// The server stops with a batch open; detections keep arriving while it is down (written
    /// straight to the log); a new server closes that batch once, with every detection.
    @Test func restartInTheMiddleOfABatchLosesNothingAndClosesOnce() async throws {
        try await withScratchDatabase { store, database in
            let configure = Self.configure(prefix: Self.prefix(), redis: false)
            // A long idle time and window, so a slow machine can't close the batch before the
            // restart (a loaded run once took the default 90 s window to get there).
            try await runApp(
                on: database,
                configure: {
                    configure(&$0)
                    $0.settings.config.batchIdleTimeoutSeconds = 300
                    $0.settings.config.batchWindowSeconds = 3_600
                }
            ) { client in
                try await IngestAPITests.register(client, "porch")
                for object in ["car", "dog"] {
                    #expect(
                        try await client.send(.post, "/api/detections", json: IngestAPITests.detection(object: object))
                            .status == .created)
                }
                try await waitUntil("the batch is open") {
                    let events = try await Self.events(client)
                    return events.count == 1 && events[0]["ended_at"] is NSNull
                }
            }
            // Down: one more detection for the open batch (within its idle time).
            let more = DetectionRecorded(
                id: 1000, cameraId: "porch", filePath: "/x.jpg", detectedAt: Date(), objectType: "cat",
                confidence: 0.7, bboxX: 0, bboxY: 0, bboxWidth: 1, bboxHeight: 1)
            try await store.append(
                to: more.stream, events: [try NewEvent(more, metadata: EventMetadata(actor: "tests"))])

            // The new server's clock is an hour later: its first heartbeat closes the batch.
            let later: @Sendable () -> Date = { Date().addingTimeInterval(3600) }
            try await runApp(
                on: database,
                configure: {
                    configure(&$0)
                    $0.settings.config.batchIdleTimeoutSeconds = 300
                    $0.settings.config.batchWindowSeconds = 3_600
                    $0.batchClock = later
                }
            ) { client in
                try await waitUntil("the batch closed") { try await Self.closes(store).count == 1 }
                let close = try #require(try await Self.closes(store).first)
                // Nothing is left open to close again: the close and the open batches were
                // committed together.
                #expect(try await Self.openBatches(store) == 0)
                // The aggregator goes on: a heartbeat after the close moved its checkpoint row
                // without failing (a second close of the same batch would fail on its event id).
                try await waitUntil("a heartbeat after the close, or an error") {
                    let aggregator = try await Self.status(store, "batch_aggregator")
                    return aggregator.lastError != nil || aggregator.updatedAt > close.recordedAt
                }
                #expect(try await Self.status(store, "batch_aggregator").lastError == nil)
                let closes = try await Self.closes(store)
                #expect(closes.count == 1)
                #expect(closes.first?.detections.count == 3)
                #expect(closes.first?.detections.last == 1000)
                let events = try await Self.events(client)
                #expect(events.count == 1)
            }
        }
    }
}
