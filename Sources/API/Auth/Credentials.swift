import Crypto
import Domain
import Foundation
import Projections
import Synchronization

/// Who a request acts as: an API key's name and role. The name is the actor of every event the
/// request appends.
struct Principal: Sendable, Hashable {
    var name: String
    var role: Role

    /// The principal of the request being handled (set by ``AuthMiddleware``); nil when auth
    /// is off (the actor is then `anonymous`).
    @TaskLocal static var current: Principal?
}

/// An issued key's secret text: `vigil_<name>.<secret>`, the secret 32 random bytes in
/// base64url. The name makes a lookup one indexed read; only a SHA-256 of the secret is stored.
struct KeyToken: Sendable, Hashable {
    static let scheme = "vigil_"

    var name: String
    var secret: String

    var text: String { "\(Self.scheme)\(name).\(secret)" }
    /// What lists show to recognise the key: its name and the secret's first 4 characters.
    var prefix: String { "\(Self.scheme)\(name).\(secret.prefix(4))" }

    static func generate(name: String) -> KeyToken {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let secret = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return KeyToken(name: name, secret: secret)
    }

    /// The token in `text`, if it has the shape of one (a valid name, a secret after the dot).
    init?(parsing text: String) {
        guard text.hasPrefix(Self.scheme) else { return nil }
        let rest = text.dropFirst(Self.scheme.count)
        guard let dot = rest.firstIndex(of: ".") else { return nil }
        let name = String(rest[..<dot])
        let secret = String(rest[rest.index(after: dot)...])
        guard ApiKey.isValidName(name), !secret.isEmpty, secret.utf8.count <= 256 else { return nil }
        self.init(name: name, secret: secret)
    }

    init(name: String, secret: String) {
        self.name = name
        self.secret = secret
    }

    /// SHA-256 of `secret`, lower-case hex (what ``ApiKeyIssued`` records).
    static func hash(_ secret: String) -> String {
        lowercaseHex(SHA256.hash(data: Data(secret.utf8)))
    }
}

/// Compares two byte strings in a time that depends on their lengths only.
func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for (x, y) in zip(a, b) { difference |= x ^ y }
    return difference == 0
}

/// Turns a presented key into its principal: the keys from the configuration (the bootstrap
/// `admin` key, the shared `worker` key) and the keys issued through the API (the `api_keys`
/// read model).
///
/// Issued keys are cached for `ttl`, found or not, so a request costs no query in the common
/// case, and a flood of bogus keys one query per name per `ttl`. A key issued or revoked
/// through this instance leaves its cache at once (``forget(_:)``); on the other instances of a
/// cluster the change takes effect within `ttl`.
final class KeyDirectory: Sendable {
    private struct ConfiguredKey: Sendable {
        var digest: [UInt8]
        var principal: Principal
    }

    private let configured: [ConfiguredKey]
    private let keys: ApiKeysReadModel
    private let ttl: Duration
    private let cache = Mutex<[String: (key: ApiKey?, fetched: ContinuousClock.Instant)]>([:])
    private static let cacheLimit = 10_000

    init(adminKey: String?, workerKey: String?, keys: ApiKeysReadModel, ttl: Duration = .seconds(5)) {
        var configured: [ConfiguredKey] = []
        if let adminKey {
            configured.append(.init(digest: Self.digest(adminKey), principal: .init(name: "admin", role: .admin)))
        }
        if let workerKey {
            configured.append(.init(digest: Self.digest(workerKey), principal: .init(name: "worker", role: .worker)))
        }
        self.configured = configured
        self.keys = keys
        self.ttl = ttl
    }

    private static func digest(_ text: String) -> [UInt8] { Array(SHA256.hash(data: Data(text.utf8))) }

    /// The principal `presented` stands for; nil when it opens nothing (unknown, a wrong
    /// secret, revoked, expired).
    func principal(for presented: String) async throws -> Principal? {
        let digest = Self.digest(presented)
        // Every configured key is compared, whichever matches.
        var match: Principal?
        for key in configured where constantTimeEquals(key.digest, digest) { match = key.principal }
        if let match { return match }
        guard let token = KeyToken(parsing: presented), let key = try await issued(token.name) else { return nil }
        guard constantTimeEquals(Array(KeyToken.hash(token.secret).utf8), Array(key.secretHash.utf8)),
            key.isActive(at: Date())
        else { return nil }
        return Principal(name: key.name, role: key.role)
    }

    /// Drops `name` from the cache (this instance just issued or revoked it).
    func forget(_ name: String) {
        _ = cache.withLock { $0.removeValue(forKey: name) }
    }

    private func issued(_ name: String) async throws -> ApiKey? {
        let now = ContinuousClock.now
        if let hit = cache.withLock({ $0[name] }), now - hit.fetched < ttl { return hit.key }
        let key = try await keys.credential(name)
        cache.withLock { cache in
            if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[name] = (key, now)
        }
        return key
    }
}
