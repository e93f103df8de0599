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
}
