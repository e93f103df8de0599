import API
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import VigilTesting

/// Path parameters are percent-decoded: a camera whose id has non-ASCII letters (ids keep the
/// name's letters) is reachable by id for reading, changing and removing.
@Suite(.scratchApp) struct PathParameterTests {
    @Test func aCameraIdWithNonASCIILettersIsReachableByItsEncodedPath() async throws {
        let client = try TestApp.current.client
        let created = try await client.send(
            .post, "/api/cameras", json: #"{"name": "Pórch Cam #2", "folder_path": "/export/porch-2"}"#)
        #expect(created.status == .created, "\(String(buffer: created.body))")
        let id = try #require(try json(created)["id"] as? String)
        #expect(id == "pórch_cam_2")
        let path = "/api/cameras/" + (id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? id)
        #expect(path == "/api/cameras/p%C3%B3rch_cam_2")

        // The POST waits for the read model at most 10 s: on a loaded machine, wait on.
        var read = try await client.send(.get, path)
        try await waitUntil("the camera is listed") {
            read = try await client.send(.get, path)
            return read.status == .ok
        }
        #expect(try json(read)["name"] as? String == "Pórch Cam #2")
        let patched = try await client.send(.patch, path, json: #"{"status": "offline"}"#)
        #expect(patched.status == .ok, "\(String(buffer: patched.body))")
        #expect(try json(patched)["status"] as? String == "offline")
        // Unknown, encoded: the 404 names it decoded.
        let unknown = try await client.send(.get, "/api/cameras/%C3%B3")
        #expect(unknown.status == .notFound)
        #expect(try json(unknown)["detail"] as? String == "Camera ó not found")
        #expect(try await client.send(.delete, path).status == .noContent)
        #expect(try await client.send(.get, path).status == .notFound)
        // An encoded integer id is the integer.
        #expect(try await client.send(.get, "/api/events/%39%39").status == .notFound)
        #expect(try await client.send(.get, "/api/events/%7A").status == .unprocessableContent)
    }
}
