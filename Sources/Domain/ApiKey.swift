import Foundation

/// What a key may do. Each route needs one permission (the API's access table); a role is a
/// set of them.
public enum Permission: String, Codable, Sendable, CaseIterable {
    /// Read the read models: events, detections, cameras, analytics, settings.
    case read
    /// Review security events, ask for a re-analysis, acknowledge and dismiss alerts.
    case review
    /// Post detections and analyses.
    case ingest
    /// Everything else: configuration, severity, cameras, keys, rebuilds, the raw log, audit.
    case admin
}

/// A key's role: the one table of who may do what.
public enum Role: String, Codable, Sendable, CaseIterable {
    case viewer, `operator`, worker, admin

    public var permissions: Set<Permission> {
        switch self {
        case .viewer: [.read]
        case .`operator`: [.read, .review]
        // Cameras and AI workers post what they see; they read nothing back (a leaked worker
        // key doesn't open the household's history).
        case .worker: [.ingest]
        case .admin: Set(Permission.allCases)
        }
    }

    public func allows(_ permission: Permission) -> Bool { permissions.contains(permission) }
}

/// An API key was issued (`POST /api/api-keys`). Stream `api-key-<name>`: a name is taken once,
/// for good (a revoked key's name is not given again), so an actor in the audit trail always
/// means one key. Only a hash of the secret is recorded.
public struct ApiKeyIssued: DomainEvent {
    public static let type = "ApiKeyIssued"
    public var name: String
    public var role: Role
    /// SHA-256 of the secret, lower-case hex.
    public var secretHash: String
    /// The key's first characters, to recognise it in lists (`vigil_alice.AbCd…`).
    public var prefix: String
    public var issuedAt: Date
    public var expiresAt: Date?

    public init(name: String, role: Role, secretHash: String, prefix: String, issuedAt: Date, expiresAt: Date?) {
        self.name = name
        self.role = role
        self.secretHash = secretHash
        self.prefix = prefix
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
    }

    public var stream: String { ApiKey.stream(name) }

    enum CodingKeys: String, CodingKey {
        case name, role, prefix
        case secretHash = "secret_hash"
        case issuedAt = "issued_at"
        case expiresAt = "expires_at"
    }
}

/// An API key was revoked: from then on it opens nothing.
public struct ApiKeyRevoked: DomainEvent {
    public static let type = "ApiKeyRevoked"
    public var name: String
    public var revokedAt: Date

    public init(name: String, revokedAt: Date) {
        self.name = name
        self.revokedAt = revokedAt
    }

    public var stream: String { ApiKey.stream(name) }

    enum CodingKeys: String, CodingKey {
        case name
        case revokedAt = "revoked_at"
    }
}

/// An API key as its stream tells it.
public struct ApiKey: Sendable, Hashable {
    public var name: String
    public var role: Role
    public var secretHash: String
    public var prefix: String
    public var issuedAt: Date
    public var expiresAt: Date?
    public var revokedAt: Date?

    public init(
        name: String, role: Role, secretHash: String, prefix: String, issuedAt: Date, expiresAt: Date? = nil,
        revokedAt: Date? = nil
    ) {
        self.name = name
        self.role = role
        self.secretHash = secretHash
        self.prefix = prefix
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
    }

    public static func stream(_ name: String) -> String { "api-key-\(name)" }

    /// A key name: 1–64 of `a-z`, `0-9`, `_`, `-`, starting with a letter or digit.
    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, (1...64).contains(name.unicodeScalars.count) else { return false }
        let allowed = { (scalar: Unicode.Scalar) in
            ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "_" || scalar == "-"
        }
        return first != "_" && first != "-" && name.unicodeScalars.allSatisfy(allowed)
    }

    /// Names Vigil acts under itself (the configured keys, no key at all, its reactors and
    /// workers, and the projections' names): no issued key may take one, or the audit trail
    /// could not tell them apart.
    public static let reservedNames: Set<String> = SystemActor.all.union([
        "admin", "worker", "anonymous", "system", "vigil", "batch_aggregator", "analysis_publisher",
    ])

    /// Whether the key opens anything at `date`.
    public func isActive(at date: Date) -> Bool {
        revokedAt == nil && (expiresAt.map { date < $0 } ?? true)
    }

    /// The key after the events of its stream (`(type, data)`), in order; nil when none issued it.
    public static func fold(_ events: [(type: String, data: String)]) throws -> ApiKey? {
        var key: ApiKey?
        for (type, data) in events {
            switch type {
            case ApiKeyIssued.type:
                let issued = try ApiKeyIssued.decode(data)
                key = ApiKey(
                    name: issued.name, role: issued.role, secretHash: issued.secretHash, prefix: issued.prefix,
                    issuedAt: issued.issuedAt, expiresAt: issued.expiresAt)
            case ApiKeyRevoked.type:
                key?.revokedAt = try ApiKeyRevoked.decode(data).revokedAt
            default:
                continue
            }
        }
        return key
    }
}
