import Crypto
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Synthetic
import Testing
import VigilTesting

@testable import API

extension TestClientProtocol {
    /// A request with `key` in `X-API-Key` (none when nil).
    func call(
        _ method: HTTPRequest.Method, _ uri: String, key: String?, json body: String? = nil,
        headers extra: HTTPFields = [:]
    ) async throws -> TestResponse {
        var headers = extra
        if let key { headers[HTTPField.Name("X-API-Key")!] = key }
        return try await execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
    }

    /// Issues a key through the API with `adminKey`; its secret text.
    func issueKey(_ name: String, role: Role, adminKey: String, expiresAt: String? = nil) async throws -> String {
        let expiry = expiresAt.map { #", "expires_at": "\#($0)""# } ?? ""
        let response = try await call(
            .post, "/api/api-keys", key: adminKey, json: #"{"name": "\#(name)", "role": "\#(role.rawValue)"\#(expiry)}"#
        )
        #expect(response.status == .created, "issuing \(name): \(String(buffer: response.body))")
        return try #require(try json(response)["key"] as? String)
    }
}

/// API keys and roles, through the real router: who may call what, and who the log says did.
@Suite struct AuthTests {
    static let root = "bootstrap-s3cret"

    static func withAuthApp(
        _ body: @Sendable @escaping (EventStore, any TestClientProtocol) async throws -> Void
    )
        async throws
    {
        try await withApp(configure: { $0.adminKey = Self.root }) { store, client in try await body(store, client) }
    }

    @Test("every route the server serves has an access rule, and every rule names a served route")
    func everyRouteHasARule() throws {
        let routes = Set(
            registeredRoutes(ServerConfiguration(postgres: try TestDatabase.settings()), logger: testLogger))
        let rules = Set(AccessPolicy.routes.keys)
        #expect(routes.subtracting(rules).isEmpty, "routes without a rule: \(routes.subtracting(rules).sorted())")
        #expect(rules.subtracting(routes).isEmpty, "rules without a route: \(rules.subtracting(routes).sorted())")
    }

    /// The roles as the issue defines them, spelled out here rather than read from the tables
    /// under test (the matrix below checks that the server enforces the tables; this, that
    /// the tables say the right thing).
    @Test("the roles: viewer reads, operator reviews, worker only ingests, admin does everything")
    func rolesAreAsSpecified() {
        #expect(Role.viewer.permissions == [.read])
        #expect(Role.`operator`.permissions == [.read, .review])
        #expect(Role.worker.permissions == [.ingest])
        #expect(Role.admin.permissions == Set(Permission.allCases))
        let expected: [(route: String, roles: Set<Role>)] = [
            ("GET /api/events", [.viewer, .`operator`, .admin]),
            ("GET /api/analytics/risk-history", [.viewer, .`operator`, .admin]),
            ("PATCH /api/events/{event_id}", [.`operator`, .admin]),
            ("POST /api/events/{event_id}/reanalyse", [.`operator`, .admin]),
            ("POST /api/detections", [.worker, .admin]),
            ("POST /api/detections/batch", [.worker, .admin]),
            ("POST /api/events/{event_id}/analysis", [.worker, .admin]),
            ("PUT /api/system/severity", [.admin]),
            ("PATCH /api/system/config", [.admin]),
            ("POST /api/cameras", [.admin]),
            ("POST /api/projections/{name}/rebuild", [.admin]),
            ("POST /api/api-keys", [.admin]),
            ("GET /api/log", [.admin]),
        ]
        for (route, roles) in expected {
            let parts = route.split(separator: " ", maxSplits: 1)
            guard case .needs(let permission) = AccessPolicy.access(.init(String(parts[0]))!, String(parts[1])) else {
                Issue.record("\(route) is open")
                continue
            }
            #expect(Set(Role.allCases.filter { $0.allows(permission) }) == roles, "\(route)")
        }
        #expect(AccessPolicy.access(.get, "/health") == .open && AccessPolicy.access(.get, "/ready") == .open)
        #expect(AccessPolicy.access(.post, "/api/some-new-route") == .needs(.admin), "unlisted routes need admin")
    }

    /// A concrete path for a route: each `{parameter}` filled with a value naming nothing.
    static func concrete(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).map { part in
            guard part.hasPrefix("{") else { return String(part) }
            return part.hasSuffix("_id}") && !part.hasPrefix("{camera") && !part.hasPrefix("{key")
                ? "999999" : "nothing"
        }.joined(separator: "/")
    }

    @Test("the role matrix: no key 401, a bogus key 401, a role without the route's permission 403, one with it passes")
    func roleMatrix() async throws {
        try await Self.withAuthApp { _, client in
            var keys: [Role: String] = [:]
            for role in Role.allCases {
                keys[role] = try await client.issueKey("matrix-\(role.rawValue)", role: role, adminKey: Self.root)
            }
            let routes = registeredRoutes(
                ServerConfiguration(postgres: try TestDatabase.settings()), logger: testLogger)
            #expect(routes.count >= 40)
            for route in routes {
                let parts = route.split(separator: " ", maxSplits: 1)
                let method = HTTPRequest.Method(String(parts[0]))!
                let path = Self.concrete(String(parts[1]))
                let access = AccessPolicy.access(method, String(parts[1]))
                let anonymous = try await client.call(method, path, key: nil)
                let bogus = try await client.call(method, path, key: "vigil_matrix-admin.not-the-secret")
                guard case .needs(let permission) = access else {
                    #expect(![.unauthorized, .forbidden].contains(anonymous.status), "\(route) is open")
                    continue
                }
                #expect(anonymous.status == .unauthorized, "\(route) without a key")
                #expect(try json(anonymous)["detail"] as? String == "Missing API key: send it in the X-API-Key header")
                #expect(bogus.status == .unauthorized, "\(route) with a wrong secret")
                for role in Role.allCases {
                    let response = try await client.call(method, path, key: keys[role])
                    if role.allows(permission) {
                        #expect(
                            ![.unauthorized, .forbidden].contains(response.status),
                            "\(route) as \(role): \(response.status) \(String(buffer: response.body))")
                    } else {
                        #expect(response.status == .forbidden, "\(route) as \(role): \(response.status)")
                        #expect(
                            try json(response)["detail"] as? String
                                == "API key 'matrix-\(role.rawValue)' (role \(role.rawValue)) may not \(parts[0]) \(parts[1])"
                        )
                    }
                }
            }
        }
    }

    @Test("a key's secret is shown once, stored only as its SHA-256, and opens the API until revoked")
    func issueAndRevoke() async throws {
        try await Self.withAuthApp { store, client in
            let response = try await client.call(
                .post, "/api/api-keys", key: Self.root, json: #"{"name": "alice", "role": "operator"}"#)
            #expect(response.status == .created)
            let issued = try json(response)
            let secret = try #require(issued["key"] as? String)
            #expect(secret.hasPrefix("vigil_alice."))
            #expect(issued["role"] as? String == "operator" && issued["is_active"] as? Bool == true)
            #expect((issued["prefix"] as? String).map { secret.hasPrefix($0) && $0.count < secret.count } == true)

            // Never shown again: neither the item nor the list has the secret or its hash.
            let item = try await client.call(.get, "/api/api-keys/alice", key: Self.root)
            #expect(item.status == .ok)
            let list = try await client.call(.get, "/api/api-keys", key: Self.root)
            for body in [String(buffer: item.body), String(buffer: list.body)] {
                #expect(!body.contains(secret) && !body.contains("secret_hash") && !body.contains("\"key\""))
            }
            #expect(try json(list)["count"] as? Int == 1)
            // The log has the hash, not the secret.
            let stored = try #require(try await store.readStream(ApiKey.stream("alice"))?.events.first)
            let secretPart = String(secret.split(separator: ".", maxSplits: 1)[1])
            let hash = SHA256.hash(data: Data(secretPart.utf8)).map { String(format: "%02x", $0) }.joined()
            #expect(try ApiKeyIssued.decode(stored.data).secretHash == hash)
            #expect(!stored.data.contains(secretPart))
            #expect(
                try EventCoding.decoder.decode(EventMetadata.self, from: Data(stored.metadata.utf8)).actor == "admin")

            #expect(try await client.call(.get, "/api/events", key: secret).status == .ok)
            #expect(try await client.call(.get, "/api/events?api_key=\(secret)", key: nil).status == .ok)
            let websocket: HTTPFields = [.secWebSocketProtocol: "vigil, api-key.\(secret)"]
            #expect(try await client.call(.get, "/api/events", key: nil, headers: websocket).status == .ok)
            let tampered = String(secret.dropLast()) + (secret.last == "A" ? "B" : "A")
            #expect(try await client.call(.get, "/api/events", key: tampered).status == .unauthorized)

            #expect(try await client.call(.delete, "/api/api-keys/alice", key: Self.root).status == .noContent)
            #expect(try await client.call(.get, "/api/events", key: secret).status == .unauthorized)
            let revoked = try json(try await client.call(.get, "/api/api-keys/alice", key: Self.root))
            #expect(revoked["is_active"] as? Bool == false && revoked["revoked_at"] is String)
            // Revoking again changes nothing; a name is issued once, for good.
            #expect(try await client.call(.delete, "/api/api-keys/alice", key: Self.root).status == .noContent)
            #expect(try await store.readStream(ApiKey.stream("alice"))?.version == 2)
            let again = try await client.call(
                .post, "/api/api-keys", key: Self.root, json: #"{"name": "alice", "role": "viewer"}"#)
            #expect(again.status == .conflict)
            #expect(try await client.call(.delete, "/api/api-keys/nobody", key: Self.root).status == .notFound)

            // Revoked from many consoles at once: every one is told it is revoked (once 409s),
            // and it is revoked once.
            _ = try await client.issueKey("bob", role: .viewer, adminKey: Self.root)
            let statuses = try await statusesOfConcurrent(20) {
                try await client.call(.delete, "/api/api-keys/bob", key: Self.root).status
            }
            #expect(statuses == Array(repeating: 204, count: 20), "\(statuses)")
            #expect(try await store.readStream(ApiKey.stream("bob"))?.version == 2)
        }
    }

    @Test("bad key requests: invalid names and roles 422, reserved names 409, a past expiry 422; an expired key 401")
    func badKeyRequests() async throws {
        try await Self.withAuthApp { store, client in
            for body in [
                #"{"name": "Alice", "role": "viewer"}"#, #"{"name": "-x", "role": "viewer"}"#,
                #"{"name": "a.b", "role": "viewer"}"#, #"{"name": "ok", "role": "owner"}"#, #"{"name": "ok"}"#,
                #"{"role": "viewer"}"#, #"{"name": "ok", "role": "viewer", "expires_at": "2020-01-01T00:00:00Z"}"#,
                #"{"name": "ok", "role": "viewer", "expires_at": "soon"}"#,
            ] {
                let response = try await client.call(.post, "/api/api-keys", key: Self.root, json: body)
                #expect(response.status == .unprocessableContent, "\(body): \(response.status)")
                #expect(try json(response)["detail"] is [Any])
            }
            for name in [
                "admin", "worker", "anonymous", "batch_aggregator", "alert-engine", "webhook-deliverer", "synthetic",
            ] {
                let response = try await client.call(
                    .post, "/api/api-keys", key: Self.root, json: #"{"name": "\#(name)", "role": "viewer"}"#)
                #expect(response.status == .conflict, "\(name)")
            }
            #expect(try await store.changeCount() == 0, "nothing refused is written but the refusal")

            // Keys whose expiry has passed, and one whose expiry has not (written to the log
            // directly: the API refuses an expiry in the past).
            for (name, expiry) in [("lapsed", -1.0), ("current", 3600.0)] {
                let token = KeyToken.generate(name: name)
                try await store.append(
                    to: ApiKey.stream(name),
                    events: [
                        try NewEvent(
                            ApiKeyIssued(
                                name: name, role: .viewer, secretHash: KeyToken.hash(token.secret),
                                prefix: token.prefix, issuedAt: Date(), expiresAt: Date().addingTimeInterval(expiry)),
                            metadata: EventMetadata(actor: "admin"))
                    ])
                try await waitUntil("\(name) is in the read model") {
                    try await client.call(.get, "/api/api-keys/\(name)", key: Self.root).status == .ok
                }
                let status = try await client.call(.get, "/api/cameras", key: token.text).status
                #expect(status == (expiry < 0 ? .unauthorized : .ok), "\(name)")
            }
        }
    }

    @Test("alice (operator) reviews and may not change the thresholds; root (admin) may; no key is 401")
    func whoChangedWhat() async throws {
        try await Self.withAuthApp { store, client in
            try await store.appendSynthetic(
                SyntheticHistory(start: Date(timeIntervalSince1970: 1_780_000_000)), events: 0..<5)
            let alice = try await client.issueKey("alice", role: .operator, adminKey: Self.root)
            let root = try await client.issueKey("root", role: .admin, adminKey: Self.root)
            try await waitUntil("the events are projected") {
                try json(try await client.call(.get, "/api/events", key: alice))["count"] as? Int == 5
            }
            let review = try await client.call(.patch, "/api/events/3", key: alice, json: #"{"reviewed": true}"#)
            #expect(review.status == .ok)
            let thresholds = #"{"low_max": 20, "medium_max": 45, "high_max": 70}"#
            let refused = try await client.call(.put, "/api/system/severity", key: alice, json: thresholds)
            #expect(refused.status == .forbidden)
            #expect(try await store.readStream(SystemSettings.stream) == nil, "a refused change writes nothing")
            #expect(try await client.call(.put, "/api/system/severity", key: root, json: thresholds).status == .ok)
            #expect(try await client.call(.get, "/api/events?limit=1", key: nil).status == .unauthorized)

            let actor = { (event: RecordedEvent?) throws -> String? in
                guard let event else { return nil }
                return try EventCoding.decoder.decode(EventMetadata.self, from: Data(event.metadata.utf8)).actor
            }
            #expect(try actor(try await store.readStream(SecurityEvents.stream(3))?.events.last) == "alice")
            #expect(try actor(try await store.readStream(SystemSettings.stream)?.events.last) == "root")
        }
    }

    @Test("with auth off every route is open and the actor is anonymous; a configured key turns it on")
    func authOffAndDefaults() async throws {
        var configuration = ServerConfiguration(postgres: try TestDatabase.settings())
        #expect(!configuration.isAuthOn)
        configuration.workerKey = "w"
        #expect(configuration.isAuthOn)
        configuration.auth = false
        #expect(!configuration.isAuthOn)
        try await withApp { store, client in
            let response = try await client.call(
                .put, "/api/system/severity", key: nil, json: #"{"low_max": 20, "medium_max": 45, "high_max": 70}"#)
            #expect(response.status == .ok)
            let event = try #require(try await store.readStream(SystemSettings.stream)?.events.last)
            #expect(
                try EventCoding.decoder.decode(EventMetadata.self, from: Data(event.metadata.utf8)).actor == "anonymous"
            )
        }
    }
}
