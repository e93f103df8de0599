import API
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import VigilTesting

/// Issue 12, finding 6: a camera's name and folder path are unique by the log's decision.
@Suite("Cameras: uniqueness decided by the log")
struct CameraUniquenessTests {
    static func registrations(_ store: EventStore) async throws -> [RecordedEvent] {
        try await store.readAll().filter { $0.type == CameraRegistered.type }
    }

    @Test(
        "Folder paths are normalised: runs of /, . segments and a trailing / go; case is kept",
        arguments: [
            ("/export/foscam/front", "/export/foscam/front"), ("/export//foscam/front/", "/export/foscam/front"),
            ("/export/./foscam///front//", "/export/foscam/front"), ("/", "/"), ("//", "/"),
            ("cams/Front/", "cams/Front"), ("/Export/Front", "/Export/Front"),
        ])
    func normalizedFolderPath(path: String, normalized: String) {
        #expect(Camera.normalizedFolderPath(path) == normalized)
    }

    @Test("32 concurrent registrations of one folder path (spelled differently): one 201, 31 × 409, one event")
    func concurrentRegistrations() async throws {
        try await withApp { store, client in
            let spellings = ["/export/shared", "/export/shared/", "/export//shared", "/export/./shared"]
            let statuses = try await withThrowingTaskGroup(of: (HTTPResponse.Status, String).self) { group in
                for n in 0..<32 {
                    group.addTask {
                        let response = try await client.send(
                            .post, "/api/cameras",
                            json: #"{"name": "Camera \#(n)", "folder_path": "\#(spellings[n % spellings.count])"}"#)
                        return (response.status, String(buffer: response.body))
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.filter { $0.0 == .created }.count == 1, "\(statuses)")
            let conflicts = statuses.filter { $0.0 == .conflict }
            #expect(conflicts.count == 31, "\(statuses)")
            for (_, body) in conflicts {
                #expect(body == #"{"detail":"A camera already uses folder_path '/export/shared'"}"#)
            }
            let registered = try await Self.registrations(store)
            #expect(registered.count == 1)
            #expect(try registered.first.map { try CameraRegistered.decode($0.data).folderPath } == "/export/shared")
            let reservations = try await store.readStream(Reservation.stream(.cameraFolderPath, "/export/shared"))
            #expect(reservations?.events.map(\.type) == [UniqueValueReserved.type])
        }
    }

    @Test("One after another: the second is 409 in the seed's format and writes nothing")
    func sequentialRegistrations() async throws {
        try await withApp { store, client in
            let first = try await client.send(
                .post, "/api/cameras", json: #"{"name": "Porch", "folder_path": "/cams/porch"}"#)
            #expect(first.status == .created)
            #expect(try json(first)["folder_path"] as? String == "/cams/porch")
            let before = try await CommandAPITests.logSize(store)
            let second = try await client.send(
                .post, "/api/cameras", json: #"{"name": "Porch 2", "folder_path": "/cams//porch/"}"#)
            #expect(second.status == .conflict)
            #expect(try json(second)["detail"] as? String == "A camera already uses folder_path '/cams/porch'")
            #expect(try await CommandAPITests.logSize(store) == before)
        }
    }

    @Test("Removal releases the name and the folder: another camera, or the same name, may take them")
    func removeThenRegisterAgain() async throws {
        try await withApp { store, client in
            #expect(
                try await client.send(
                    .post, "/api/cameras", json: #"{"name": "Garage", "folder_path": "/cams/garage"}"#
                )
                .status == .created)
            #expect(try await client.send(.delete, "/api/cameras/garage").status == .noContent)
            let released = try await store.readStream(Reservation.stream(.cameraFolderPath, "/cams/garage"))
            #expect(released?.events.map(\.type) == [UniqueValueReserved.type, UniqueValueReleased.type])

            let other = try await client.send(
                .post, "/api/cameras", json: #"{"name": "Workshop", "folder_path": "/cams/garage/"}"#)
            #expect(other.status == .created)
            // The old name is free too; its folder is now the workshop's.
            let again = try await client.send(
                .post, "/api/cameras", json: #"{"name": "Garage", "folder_path": "/cams/garage"}"#)
            #expect(again.status == .conflict)
            #expect(
                try await client.send(
                    .post, "/api/cameras", json: #"{"name": "Garage", "folder_path": "/cams/garage2"}"#
                )
                .status == .created)
            #expect(try await Self.registrations(store).count == 3)
        }
    }

    @Test("PATCH moving a folder path releases the old one and takes the new one; a taken one is 409")
    func patchMovesTheReservation() async throws {
        try await withApp { store, client in
            for (name, folder) in [("Front", "/cams/front"), ("Back", "/cams/back")] {
                #expect(
                    try await client.send(
                        .post, "/api/cameras", json: #"{"name": "\#(name)", "folder_path": "\#(folder)"}"#
                    ).status == .created)
            }
            let moved = try await client.send(.patch, "/api/cameras/front", json: #"{"folder_path": "/cams/porch/"}"#)
            #expect(moved.status == .ok)
            #expect(try json(moved)["folder_path"] as? String == "/cams/porch")
            #expect(
                try await store.readStream(Reservation.stream(.cameraFolderPath, "/cams/front"))?.events.last?.type
                    == UniqueValueReleased.type)

            let before = try await CommandAPITests.logSize(store)
            let taken = try await client.send(.patch, "/api/cameras/back", json: #"{"folder_path": "/cams/porch"}"#)
            #expect(taken.status == .conflict)
            #expect(try json(taken)["detail"] as? String == "A camera already uses folder_path '/cams/porch'")
            // A name that differs only in case or punctuation is the same name (one id).
            let renamed = try await client.send(.patch, "/api/cameras/back", json: #"{"name": "FRONT"}"#)
            #expect(renamed.status == .conflict)
            #expect(try json(renamed)["detail"] as? String == "A camera named 'FRONT' already exists")
            #expect(try await CommandAPITests.logSize(store) == before)

            // Nor in how its letters are encoded: `é` composed, then `e` and a combining accent.
            #expect(
                try await client.send(.post, "/api/cameras", json: #"{"name": "Caf\u00e9", "folder_path": "/cams/c1"}"#)
                    .status == .created)
            let decomposed = try await client.send(
                .post, "/api/cameras", json: #"{"name": "Cafe\u0301", "folder_path": "/cams/c2"}"#)
            #expect(decomposed.status == .conflict, "\(String(buffer: decomposed.body))")

            let freed = try await client.send(
                .post, "/api/cameras", json: #"{"name": "Side", "folder_path": "/cams/front"}"#)
            #expect(freed.status == .created)
        }
    }
}
