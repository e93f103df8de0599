import Foundation

public enum AlertSeverity: String, Codable, Sendable, CaseIterable {
    case low, medium, high, critical
}

/// When a rule may fire: on `days` (nil: every day) between `startTime` and `endTime` (`HH:MM`,
/// in `timezone`); a window whose start is after its end wraps midnight (22:00–06:00).
public struct AlertSchedule: Codable, Sendable, Hashable {
    public var days: [String]?
    public var startTime: String
    public var endTime: String
    public var timezone: String

    public static let weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

    public init(days: [String]?, startTime: String, endTime: String, timezone: String = "UTC") {
        self.days = days
        self.startTime = startTime
        self.endTime = endTime
        self.timezone = timezone
    }

    /// Minutes after midnight of `HH:MM` (00:00–23:59), nil when it isn't one.
    public static func minutes(_ text: String) -> Int? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isASCII) }),
            let hours = Int(parts[0]), let minutes = Int(parts[1]), (0..<24).contains(hours), (0..<60).contains(minutes)
        else { return nil }
        return hours * 60 + minutes
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(days, forKey: .days)
        try container.encode(startTime, forKey: .startTime)
        try container.encode(endTime, forKey: .endTime)
        try container.encode(timezone, forKey: .timezone)
    }

    enum CodingKeys: String, CodingKey {
        case days, timezone
        case startTime = "start_time"
        case endTime = "end_time"
    }
}

/// What an alert rule says (CONTRACT: Alerts); a nil list or threshold matches everything.
public struct AlertRuleDefinition: Codable, Sendable, Hashable {
    public var name: String
    public var description: String?
    public var enabled: Bool
    public var severity: AlertSeverity
    public var riskThreshold: Int?
    public var objectTypes: [String]?
    public var cameraIds: [String]?
    public var zoneIds: [String]?
    public var minConfidence: Double?
    public var schedule: AlertSchedule?
    public var dedupKeyTemplate: String
    public var cooldownSeconds: Int
    public var channels: [String]

    public static let defaultDedupKeyTemplate = "{camera_id}:{rule_id}"
    /// What a dedup key template may name.
    public static let placeholders: Set<String> = ["camera_id", "rule_id", "object_type", "event_id", "severity"]
    public static let knownChannels = ["webhook", "websocket", "email", "push"]

    public init(
        name: String, description: String? = nil, enabled: Bool = true, severity: AlertSeverity = .medium,
        riskThreshold: Int? = nil, objectTypes: [String]? = nil, cameraIds: [String]? = nil, zoneIds: [String]? = nil,
        minConfidence: Double? = nil, schedule: AlertSchedule? = nil,
        dedupKeyTemplate: String = AlertRuleDefinition.defaultDedupKeyTemplate, cooldownSeconds: Int = 300,
        channels: [String] = []
    ) {
        self.name = name
        self.description = description
        self.enabled = enabled
        self.severity = severity
        self.riskThreshold = riskThreshold
        self.objectTypes = objectTypes
        self.cameraIds = cameraIds
        self.zoneIds = zoneIds
        self.minConfidence = minConfidence
        self.schedule = schedule
        self.dedupKeyTemplate = dedupKeyTemplate
        self.cooldownSeconds = cooldownSeconds
        self.channels = channels
    }

    /// The placeholders of `template` (`{name}`) that a template may not name; nil when the
    /// braces don't pair up.
    public static func unknownPlaceholders(_ template: String) -> [String]? {
        var unknown: [String] = []
        var rest = Substring(template)
        while let open = rest.firstIndex(where: { $0 == "{" || $0 == "}" }) {
            guard rest[open] == "{", let close = rest[open...].firstIndex(of: "}") else { return nil }
            let name = String(rest[rest.index(after: open)..<close])
            if name.contains("{") { return nil }
            if !placeholders.contains(name) { unknown.append(name) }
            rest = rest[rest.index(after: close)...]
        }
        return unknown
    }

    /// The fields as JSON values, by name (the audit trail's old and new values).
    public var fields: [String: JSONValue] { EventCoding.fields(of: self) }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(description, forKey: .description)
        try container.encode(enabled, forKey: .enabled)
        try container.encode(severity, forKey: .severity)
        try container.encode(riskThreshold, forKey: .riskThreshold)
        try container.encode(objectTypes, forKey: .objectTypes)
        try container.encode(cameraIds, forKey: .cameraIds)
        try container.encode(zoneIds, forKey: .zoneIds)
        try container.encode(minConfidence, forKey: .minConfidence)
        try container.encode(schedule, forKey: .schedule)
        try container.encode(dedupKeyTemplate, forKey: .dedupKeyTemplate)
        try container.encode(cooldownSeconds, forKey: .cooldownSeconds)
        try container.encode(channels, forKey: .channels)
    }

    enum CodingKeys: String, CodingKey {
        case name, description, enabled, severity, schedule, channels
        case riskThreshold = "risk_threshold"
        case objectTypes = "object_types"
        case cameraIds = "camera_ids"
        case zoneIds = "zone_ids"
        case minConfidence = "min_confidence"
        case dedupKeyTemplate = "dedup_key_template"
        case cooldownSeconds = "cooldown_seconds"
    }
}

/// A rule made (`POST /api/alerts/rules`).
public struct AlertRuleCreated: DomainEvent {
    public static let type = "AlertRuleCreated"
    public var id: String
    public var rule: AlertRuleDefinition
    public var createdAt: Date

    public init(id: String, rule: AlertRuleDefinition, createdAt: Date) {
        self.id = id
        self.rule = rule
        self.createdAt = createdAt
    }

    public var stream: String { AlertRule.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id, rule
        case createdAt = "created_at"
    }
}

/// A rule changed (`PUT /api/alerts/rules/{id}`): what it is now and what it was.
public struct AlertRuleUpdated: DomainEvent {
    public static let type = "AlertRuleUpdated"
    public var id: String
    public var rule: AlertRuleDefinition
    public var previous: AlertRuleDefinition
    public var updatedAt: Date

    public init(id: String, rule: AlertRuleDefinition, previous: AlertRuleDefinition, updatedAt: Date) {
        self.id = id
        self.rule = rule
        self.previous = previous
        self.updatedAt = updatedAt
    }

    public var stream: String { AlertRule.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id, rule, previous
        case updatedAt = "updated_at"
    }
}

/// A rule removed (`DELETE /api/alerts/rules/{id}`).
public struct AlertRuleDeleted: DomainEvent {
    public static let type = "AlertRuleDeleted"
    public var id: String
    public var deletedAt: Date

    public init(id: String, deletedAt: Date) {
        self.id = id
        self.deletedAt = deletedAt
    }

    public var stream: String { AlertRule.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id
        case deletedAt = "deleted_at"
    }
}

/// A rule as its stream folds: nil before it was made and after it was deleted.
public struct AlertRule: Sendable, Hashable {
    public var id: String
    public var definition: AlertRuleDefinition

    public static func stream(_ id: String) -> String { "alert-rule-\(id)" }

    public static func fold(_ events: [(type: String, data: String)]) throws -> AlertRule? {
        var rule: AlertRule?
        for (type, data) in events {
            switch type {
            case AlertRuleCreated.type:
                let event = try AlertRuleCreated.decode(data)
                rule = AlertRule(id: event.id, definition: event.rule)
            case AlertRuleUpdated.type:
                rule?.definition = try AlertRuleUpdated.decode(data).rule
            case AlertRuleDeleted.type:
                rule = nil
            default:
                break
            }
        }
        return rule
    }
}
