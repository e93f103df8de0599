import API
import EventStore
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

/// A command waits for its read models (read your writes); when they don't apply the write in
/// time, the answer says so (202 with the write's checkpoint) instead of answering from read
/// models that predate it.
@Suite struct ReadYourWritesTests {
    @Test func aWriteTheReadModelsDidNotApplyIsA202WithItsCheckpoint() async throws {
        // No runner applies anything: every wait for a read model gives up.
        try await withApp(configure: {
            $0.runProjections = false
            $0.readYourWritesTimeout = .seconds(1)
        }) { store, client in
            let response = try await client.send(
                .post, "/api/cameras", json: #"{"name": "Attic", "folder_path": "/export/attic"}"#)
            #expect(response.status == .accepted, "\(String(buffer: response.body))")
            let body = try json(response)
            let token = try #require(body["checkpoint"] as? String)
            #expect((body["detail"] as? String)?.contains("(cameras) have not applied it yet") == true)
            // The write is in the log, at that checkpoint or before (its reservations' events too).
            let registered = try #require(try await store.readStream("camera-attic")?.events.last)
            #expect(registered.type == "CameraRegistered")
            #expect(registered.checkpoint <= (try Checkpoint(token: token)))
            // Asked again, the same name is taken: the reservation is written.
            let again = try await client.send(
                .post, "/api/cameras", json: #"{"name": "attic", "folder_path": "/export/attic2"}"#)
            #expect(again.status == .conflict, "\(String(buffer: again.body))")
        }
    }

    /// A command that changes nothing answers from the read models too: they must have applied
    /// the state it decided on (else a repeat of a change still on its way answers the state
    /// before it, or a 404 for what it just made).
    @Test func aCommandThatChangesNothingWaitsForWhatItSaw() async throws {
        try await withApp(configure: {
            $0.runProjections = false
            $0.readYourWritesTimeout = .seconds(1)
        }) { _, client in
            let created = try await client.send(.post, "/api/alerts/rules", json: #"{"name": "porch"}"#)
            #expect(created.status == .accepted, "\(String(buffer: created.body))")
            let id = try #require(try await client.getJSON("/api/log?limit=100")["events"] as? [[String: Any]])
                .compactMap { ($0["data"] as? [String: Any])?["id"] as? String }.first
            let unchanged = try await client.send(
                .put, "/api/alerts/rules/\(try #require(id))", json: #"{"name": "porch"}"#)
            #expect(unchanged.status == .accepted, "\(String(buffer: unchanged.body))")
            #expect(try json(unchanged)["checkpoint"] is String)
        }
    }

    /// The wait is woken by the runners' notifications, not by looking again every so often.
    /// With the periodic look (600 s) beyond the timeout (20 s), a wait nobody wakes ends at the
    /// timeout, where its last look finds the write applied: each command would take 20 s. Woken,
    /// each answers as soon as its read model has applied it. (A bound of 10 s against 20, not a
    /// speed measurement.)
    @Test func aWriteIsAnsweredWhenItsRunnerNotifiesItsCommit() async throws {
        try await withApp(configure: {
            $0.readYourWritesTimeout = .seconds(20)
            $0.readYourWritesPoll = .seconds(600)
        }) { _, client in
            for n in 1...5 {
                let started = ContinuousClock.now
                let response = try await client.send(
                    .post, "/api/cameras", json: #"{"name": "Shed \#(n)", "folder_path": "/export/shed\#(n)"}"#)
                #expect(response.status == .created, "\(String(buffer: response.body))")
                #expect(started.duration(to: .now) < .seconds(10), "command \(n)")
            }
        }
    }
}
