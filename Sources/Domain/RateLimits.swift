import Foundation

/// Which budget a request draws from (the seed's tiers, and Vigil's own for ingest).
public enum RateLimitTier: String, Codable, Sendable, CaseIterable {
    /// Most routes.
    case standard
    /// Full-text search and the CSV export: the expensive reads.
    case search
    /// Posting detections and analyses (cameras and workers post far more than people read).
    case ingest
    /// Images and videos (no such route yet).
    case media
    /// New WebSocket connections (`/ws/…`), per client address.
    case websocket
}

/// How many requests a client may make per window, per tier, and whether limits apply at all.
/// Part of the system settings (stream `config-system`): a change is an event.
public struct RateLimits: Codable, Sendable, Hashable {
    /// Off by default: a home LAN behind a firewall needs none; turn it on when the API is
    /// reachable from elsewhere.
    public var enabled: Bool
    public var standard: Int
    public var search: Int
    public var ingest: Int
    public var media: Int
    public var websocket: Int

    public static let defaults = RateLimits(
        enabled: false, standard: 600, search: 60, ingest: 6000, media: 1200, websocket: 10)

    /// Each limit's allowed values.
    public static let range = 1...1_000_000

    public init(enabled: Bool, standard: Int, search: Int, ingest: Int, media: Int, websocket: Int) {
        self.enabled = enabled
        self.standard = standard
        self.search = search
        self.ingest = ingest
        self.media = media
        self.websocket = websocket
    }

    public func limit(_ tier: RateLimitTier) -> Int {
        switch tier {
        case .standard: standard
        case .search: search
        case .ingest: ingest
        case .media: media
        case .websocket: websocket
        }
    }

    public mutating func set(_ tier: RateLimitTier, _ value: Int) {
        switch tier {
        case .standard: standard = value
        case .search: search = value
        case .ingest: ingest = value
        case .media: media = value
        case .websocket: websocket = value
        }
    }

    /// The limits as a JSON object (the API's and the events' field names).
    public var fields: [String: JSONValue] {
        var fields: [String: JSONValue] = ["enabled": .bool(enabled)]
        for tier in RateLimitTier.allCases { fields[tier.rawValue] = .number(Double(limit(tier))) }
        return fields
    }
}

/// Someone changed the rate limits (`PUT /api/system/rate-limits`); `previous` are the ones
/// replaced. Stream `config-system`.
public struct RateLimitsChanged: DomainEvent {
    public static let type = "RateLimitsChanged"
    public var limits: RateLimits
    public var previous: RateLimits

    public init(_ limits: RateLimits, previous: RateLimits) {
        self.limits = limits
        self.previous = previous
    }

    public var stream: String { SystemSettings.stream }
}
