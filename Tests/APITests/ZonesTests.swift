import Domain
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing
import VigilTesting

@testable import API

/// `/api/cameras/{camera_id}/zones` through the real router: create, read, change, delete, the
/// shape rules, access, and the audit trail's old and new values.
@Suite struct ZonesTests {
    static let root = AuthTests.root
    static let triangle = #"[[0.1, 0.1], [0.5, 0.1], [0.3, 0.6]]"#

    @Test("A zone's life: drawn, read, changed, refused when invalid, deleted; each change audited")
    func lifecycle() async throws {
        try await withApp(configure: { $0.adminKey = Self.root }) { _, client in
            func call(
                _ method: HTTPRequest.Method, _ path: String, _ body: String? = nil, key: String? = Self.root
            )
                async throws -> TestResponse
            {
                try await client.call(method, path, key: key, json: body)
            }
            #expect(
                try await call(.post, "/api/cameras", #"{"name": "Front Door", "folder_path": "/export/front_door"}"#)
                    .status == .created)
            #expect(
                try await call(.post, "/api/cameras", #"{"name": "Garage", "folder_path": "/export/garage"}"#)
                    .status == .created)
            let base = "/api/cameras/front_door/zones"

            let created = try await call(
                .post, base,
                ##"{"name": "Front door", "zone_type": "entry_point", "coordinates": \##(Self.triangle), "shape": "polygon", "color": "#ff0000", "priority": 5}"##
            )
            #expect(created.status == .created)
            let zone = try json(created)
            let id = try #require(zone["id"] as? String)
            #expect(zone["camera_id"] as? String == "front_door" && zone["color"] as? String == "#FF0000")
            #expect(zone["enabled"] as? Bool == true && zone["priority"] as? Int == 5)
            #expect((zone["coordinates"] as? [[Double]]) == [[0.1, 0.1], [0.5, 0.1], [0.3, 0.6]])
            let list = try json(try await call(.get, base))
            #expect(list["count"] as? Int == 1 && (list["zones"] as? [[String: Any]])?.first?["id"] as? String == id)
            #expect(try await call(.get, "\(base)/\(id)").status == .ok)
            #expect(try await call(.get, "/api/cameras/garage/zones/\(id)").status == .notFound)
            #expect(try await call(.get, "/api/cameras/attic/zones").status == .notFound)

            // Changed: any subset; a change that leaves an invalid zone is refused.
            let renamed = try json(try await call(.put, "\(base)/\(id)", #"{"name": "Porch steps", "enabled": false}"#))
            #expect(renamed["name"] as? String == "Porch steps" && renamed["enabled"] as? Bool == false)
            #expect(renamed["zone_type"] as? String == "entry_point")
            // The seed's `enabled` filter, counted too.
            #expect(try json(try await call(.get, "\(base)?enabled=false"))["count"] as? Int == 1)
            let enabledOnly = try json(try await call(.get, "\(base)?enabled=true"))
            #expect(enabledOnly["count"] as? Int == 0 && (enabledOnly["zones"] as? [Any])?.isEmpty == true)
            #expect(try await call(.get, "\(base)?enabled=banana").status == .unprocessableContent)
            let asRectangle = try await call(.put, "\(base)/\(id)", #"{"shape": "rectangle"}"#)
            #expect(asRectangle.status == .unprocessableContent)
            let square = #"[[0.2, 0.2], [0.4, 0.2], [0.4, 0.4], [0.2, 0.4]]"#
            let rectangle = try await call(.put, "\(base)/\(id)", #"{"shape": "rectangle", "coordinates": \#(square)}"#)
            #expect(rectangle.status == .ok)
            #expect(try json(rectangle)["shape"] as? String == "rectangle")

            // Refused, with where: nothing is stored.
            let refusals: [(String, String)] = [
                (#"{"name": "x", "coordinates": \#(Self.triangle)}"#, "coordinates"),  // a rectangle by default
                (
                    #"{"name": "x", "shape": "polygon", "coordinates": [[0.1, 0.1], [0.5, 1.5], [0.3, 0.6]]}"#,
                    "coordinates"
                ),
                (#"{"name": "x", "shape": "polygon", "coordinates": [[0.1, 0.1], [0.5], [0.3, 0.6]]}"#, "coordinates"),
                (#"{"name": "x", "shape": "polygon", "coordinates": [[0.1, 0.1], [0.5, 0.5]]}"#, "coordinates"),
                (#"{"name": "x", "shape": "polygon"}"#, "coordinates"),
                (#"{"name": "x", "shape": "polygon", "coordinates": \#(Self.triangle), "color": "red"}"#, "color"),
                (#"{"name": "x", "shape": "polygon", "coordinates": \#(Self.triangle), "priority": 101}"#, "priority"),
                (
                    #"{"name": "x", "shape": "polygon", "coordinates": \#(Self.triangle), "zone_type": "roof"}"#,
                    "zone_type"
                ),
                (#"{"name": "x", "shape": "polygon", "coordinates": \#(Self.triangle), "mood": 1}"#, "mood"),
                (#"{"name": "", "shape": "polygon", "coordinates": \#(Self.triangle)}"#, "name"),
            ]
            for (body, field) in refusals {
                let response = try await call(.post, base, body)
                #expect(response.status == .unprocessableContent, "\(body)")
                let issues = try json(response)["detail"] as? [[String: Any]] ?? []
                #expect(
                    issues.contains { ($0["loc"] as? [Any])?.map { "\($0)" } == ["body", field] }, "\(body): \(issues)")
            }
            #expect(try json(try await call(.get, base))["count"] as? Int == 1)

            // Access: a viewer reads, only admin draws.
            let viewer = try await client.issueKey("vera", role: .viewer, adminKey: Self.root)
            #expect(try await call(.get, base, key: viewer).status == .ok)
            #expect(try await call(.delete, "\(base)/\(id)", key: viewer).status == .forbidden)

            #expect(try await call(.delete, "\(base)/\(id)").status == .noContent)
            #expect(try await call(.get, "\(base)/\(id)").status == .notFound)
            #expect(try await call(.delete, "\(base)/\(id)").status == .notFound)
            #expect(try json(try await call(.get, base))["count"] as? Int == 0)

            // The trail: who drew, changed (old and new values) and deleted it.
            let trail = try await AuditTests.entries(client, "resource_type=zone&status=success", count: 4)
            #expect(
                trail.map { $0["action"] as? String } == [
                    "zone_deleted", "zone_updated", "zone_updated", "zone_created",
                ])
            #expect(trail.allSatisfy { $0["resource_id"] as? String == id && $0["actor"] as? String == "admin" })
            let firstChange = AuditTests.changes(trail[2])
            #expect(firstChange["name"] == ["old": #""Front door""#, "new": #""Porch steps""#])
            #expect(firstChange["enabled"] == ["old": "true", "new": "false"])
            #expect(AuditTests.changes(trail[3])["name"] == ["old": "null", "new": #""Front door""#])
            let refused = try await AuditTests.entries(client, "action=zone_deleted&status=failure", count: 1)
            #expect(refused.first?["actor"] as? String == "vera")
        }
    }

    @Test("A removed camera's zones leave with it: its name registered again has none")
    func removedCamerasZones() async throws {
        try await withApp { _, client in
            try await IngestAPITests.register(client, "garage")
            let base = "/api/cameras/garage/zones"
            let created = try await client.send(
                .post, base, json: #"{"name": "Door", "shape": "polygon", "coordinates": \#(Self.triangle)}"#)
            #expect(created.status == .created)
            let id = try #require(try json(created)["id"] as? String)
            #expect(try await client.send(.delete, "/api/cameras/garage").status == .noContent)
            #expect(try await client.send(.get, base).status == .notFound)
            try await IngestAPITests.register(client, "garage")
            try await waitUntil("the zones read model has applied the removal") {
                try await client.getJSON(base)["count"] as? Int == 0
            }
            #expect(try await client.send(.get, "\(base)/\(id)").status == .notFound)
        }
    }
}
