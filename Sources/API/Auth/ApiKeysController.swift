import Domain
import EventStore
import Foundation
import Hummingbird
import Projections

/// `/api/api-keys`: issue (the secret shown once), list, read and revoke API keys.
///
/// A key lives in its own stream, `api-key-<name>`, so a name is issued once for good (a
/// revoked key's name is not given again: `actor=alice` in the audit trail always means one
/// key). Issuing and revoking are events; the `api_keys` read model holds only the secret's
/// SHA-256.
struct ApiKeysController<Context: RequestContext> {
    let keys: ApiKeysReadModel
    let store: EventStore
    let appender: GroupCommitAppender
    let readYourWrites: ReadYourWrites
    /// nil when auth is off (keys can still be issued, for when it is turned on).
    let directory: KeyDirectory?

    func addRoutes(to router: Router<Context>) {
        let group = router.group("/api/api-keys")
        group.get(use: list)
        group.post(use: issue)
        group.get("{key_id}", use: get)
        group.delete("{key_id}", use: revoke)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let page = try PageRequest(QueryParameters(request), idIsInteger: false)
        return page.response(try await keys.list(page: page.bounds), key: "api_keys")
    }

    @Sendable func get(_ request: Request, context: Context) async throws -> Response {
        let name = try context.parameters.text("key_id")
        return try itemResponse(try await keys.item(name), notFound: "API key \(name) not found")
    }

    @Sendable func issue(_ request: Request, context: Context) async throws -> Response {
        var body = try await JSONBody.parse(request, context: context)
        let name = body.string("name", required: true, length: 1...64)
        let role = body.choice("role", Role.self)
        if !body.has("role") { body.fail("role", "Field required", "missing") }
        let expiresAt = body.futureTime("expires_at")
        if let name, !ApiKey.isValidName(name) {
            body.fail(
                "name", "Value error, a key name is 1-64 of a-z, 0-9, '_' and '-', starting with a letter or digit",
                "value_error")
        }
        try body.validate()
        guard let name, let role else { return Response(status: .unprocessableContent) }
        if ApiKey.reservedNames.contains(name) {
            throw APIError.conflict("API key name '\(name)' is reserved")
        }
        let token = KeyToken.generate(name: name)
        let issued = ApiKeyIssued(
            name: name, role: role, secretHash: KeyToken.hash(token.secret), prefix: token.prefix,
            issuedAt: Date(), expiresAt: expiresAt)
        do {
            try await appender.appendCommand(
                issued, expected: .noStream, request: request, readYourWrites: readYourWrites,
                waitFor: ["api_keys"], conflict: APIError.conflict("API key name '\(name)' is taken"))
        } catch is ReadModelsBehind {
            // The key is issued (it is in the log) and works once the read model has it: the
            // secret must still reach the client, since it is never shown again.
        }
        directory?.forget(name)
        var writer = JSONWriter()
        writer.object { object in
            object.field("id", name)
            object.field("name", name)
            object.field("role", role.rawValue)
            object.field("prefix", token.prefix)
            object.field("created_at", EventCoding.timestamp(issued.issuedAt))
            object.field("expires_at", expiresAt.map { EventCoding.timestamp($0) })
            object.field("revoked_at", nil as String?)
            object.field("is_active", true)
            object.object("usage") { usage in
                usage.field("requests", 0)
                usage.field("refused", 0)
                usage.field("last_used_at", nil as String?)
                usage.field("last_used_from", nil as String?)
            }
            object.field("key", token.text)
        }
        return writer.response(status: .created)
    }

    /// Revokes the key (204); revoking a revoked key changes nothing and is a 204 too.
    /// Revoking races with itself too (a key revoked from two consoles at once): a revocation
    /// whose stream changed between its read and its append decides again on what it finds
    /// then, which is nearly always the other revocation (then a 204 too, where it was a 409).
    @Sendable func revoke(_ request: Request, context: Context) async throws -> Response {
        let name = try context.parameters.text("key_id")
        let stream = ApiKey.stream(name)
        try await decidingAgainOnConflict {
            guard let page = try await store.readStream(stream),
                let key = try ApiKey.fold(page.events.map { ($0.type, $0.data) })
            else { throw APIError.notFound("API key \(name) not found") }
            guard key.revokedAt == nil else { return }
            try await appender.appendCommand(
                ApiKeyRevoked(name: name, revokedAt: Date()), expected: .exact(page.version), request: request,
                readYourWrites: readYourWrites, waitFor: ["api_keys"],
                conflict: APIError.conflict("API key \(name) was changed by another request; retry"))
        }
        directory?.forget(name)
        return Response(status: .noContent)
    }
}
