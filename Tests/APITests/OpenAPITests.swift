import API
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Redis
import Testing
import VigilTesting

/// `schemas/openapi.yaml` is the contract: every route the router serves is in it and nothing
/// else, it is served as `/openapi.json` and rendered at `/docs`.
@Suite struct OpenAPITests {
    /// The operations of the served `/openapi.json`, as `"METHOD /path"`, with what each needs.
    static func operations(_ spec: [String: Any]) -> [String: String] {
        var operations: [String: String] = [:]
        for (path, item) in spec["paths"] as? [String: Any] ?? [:] {
            for (method, operation) in item as? [String: Any] ?? [:] where method != "parameters" {
                operations["\(method.uppercased()) \(path)"] =
                    (operation as? [String: Any])?["x-vigil-needs"] as? String ?? "?"
            }
        }
        return operations
    }

    @Test("Every served route is in the contract, with the access the server enforces, and nothing else is")
    func routesAreTheContract() async throws {
        var configuration = ServerConfiguration(postgres: try PostgresSettings.fromEnvironment())
        configuration.redis = RedisSettings(host: "127.0.0.1", port: 1)
        let served = Set(registeredRoutes(configuration, logger: testLogger))
        try await withApp { _, client in
            let response = try await client.send(.get, "/openapi.json")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            let spec = try json(response)
            #expect(spec["openapi"] as? String == "3.0.3")
            let operations = Self.operations(spec)
            #expect(Set(operations.keys).subtracting(served).sorted() == [], "in the contract but not served")
            #expect(served.subtracting(operations.keys).sorted() == [], "served but not in the contract")
            // The contract's access matches the docs' table, which RouteTableTests holds to the server's.
            let documented = Dictionary(
                uniqueKeysWithValues: try RouteTableTests.documentedRows().map {
                    ($0.route, $0.needs == "—" ? "open" : $0.needs)
                })
            for (route, needs) in operations { #expect(documented[route] == needs, "\(route)") }

            // Every HTTP operation (not a WebSocket) documents 422 and 503 in the seed's shapes.
            for (path, item) in spec["paths"] as? [String: Any] ?? [:] where !path.hasPrefix("/ws/") {
                for (method, operation) in item as? [String: Any] ?? [:] where method != "parameters" {
                    let responses = (operation as? [String: Any])?["responses"] as? [String: Any] ?? [:]
                    #expect(responses["422"] != nil && responses["503"] != nil, "\(method) \(path)")
                }
            }

            let page = try await client.send(.get, "/docs")
            #expect(page.status == .ok)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            let html = String(buffer: page.body)
            for path in (spec["paths"] as? [String: Any] ?? [:]).keys {
                let escaped = path.replacingOccurrences(of: "&", with: "&amp;")
                #expect(html.contains("<code>\(escaped)</code>"), "\(path)")
            }
        }
    }
}
