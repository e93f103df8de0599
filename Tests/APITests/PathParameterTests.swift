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
        for (name, expected, encoded) in [
            ("Pórch Cam #2", "pórch_cam_2", "/api/cameras/p%C3%B3rch_cam_2"),
            ("Ó Porch", "ó_porch", "/api/cameras/%C3%B3_porch"),
        ] {
            let created = try await client.send(
                .post, "/api/cameras", json: #"{"name": "\#(name)", "folder_path": "/export/\#(expected)"}"#)
            #expect(created.status == .created, "\(String(buffer: created.body))")
            let id = try #require(try json(created)["id"] as? String)
            #expect(id == expected)
            let path = "/api/cameras/" + (id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? id)
            #expect(path == encoded)

            // The POST waits for the read model at most 10 s: on a loaded machine, wait on.
            var read = try await client.send(.get, path)
            try await waitUntil("the camera is listed") {
                read = try await client.send(.get, path)
                return read.status == .ok
            }
            #expect(try json(read)["name"] as? String == name)
            let patched = try await client.send(.patch, path, json: #"{"status": "offline"}"#)
            #expect(patched.status == .ok, "\(String(buffer: patched.body))")
            #expect(try json(patched)["status"] as? String == "offline")
            #expect(try await client.send(.delete, path).status == .noContent)
            #expect(try await client.send(.get, path).status == .notFound)
        }
        // Unknown, encoded: the 404 names it decoded.
        let unknown = try await client.send(.get, "/api/cameras/%C3%B3")
        #expect(unknown.status == .notFound)
        #expect(try json(unknown)["detail"] as? String == "Camera ó not found")
        // An encoded integer id is the integer.
        #expect(try await client.send(.get, "/api/events/%39%39").status == .notFound)
        #expect(try await client.send(.get, "/api/events/%7A").status == .unprocessableContent)
    }
}
