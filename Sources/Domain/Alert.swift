import Foundation

/// Where an alert stands (CONTRACT: Alerts).
public enum AlertStatus: String, Codable, Sendable, CaseIterable {
    case pending, delivered, acknowledged, dismissed

    /// Whether `POST /api/alerts/{id}/acknowledge` may move an alert from here.
    public var canAcknowledge: Bool { self == .pending || self == .delivered }
    /// Whether `POST /api/alerts/{id}/dismiss` may move an alert from here.
    public var canDismiss: Bool { self != .dismissed }
}

/// The rule engine fired a rule for an analyzed security event. Its id is derived from the rule
/// and the event (``Alert/id(rule:event:)``): the same decision made again can't be a second
/// alert. `created_at` is when the analysis was recorded, so it is the same whenever decided.
public struct AlertTriggered: DomainEvent {
    public static let type = "AlertTriggered"
    public var id: String
    public var eventId: Int64
    public var ruleId: String
    public var ruleName: String
    public var severity: AlertSeverity
    public var channels: [String]
    public var dedupKey: String
    public var cameraId: String
    public var riskScore: Int
    /// The object types of the detections that met the rule.
    public var objectTypes: [String]
    public var summary: String
    public var createdAt: Date

    public init(
        id: String, eventId: Int64, ruleId: String, ruleName: String, severity: AlertSeverity, channels: [String],
        dedupKey: String, cameraId: String, riskScore: Int, objectTypes: [String], summary: String, createdAt: Date
    ) {
        self.id = id
        self.eventId = eventId
        self.ruleId = ruleId
        self.ruleName = ruleName
        self.severity = severity
        self.channels = channels
        self.dedupKey = dedupKey
        self.cameraId = cameraId
        self.riskScore = riskScore
        self.objectTypes = objectTypes
        self.summary = summary
        self.createdAt = createdAt
    }

    public var stream: String { Alert.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id, severity, channels, summary
        case eventId = "event_id"
        case ruleId = "rule_id"
        case ruleName = "rule_name"
        case dedupKey = "dedup_key"
        case cameraId = "camera_id"
        case riskScore = "risk_score"
        case objectTypes = "object_types"
        case createdAt = "created_at"
    }
}

/// Someone saw the alert (`POST /api/alerts/{id}/acknowledge`).
public struct AlertAcknowledged: DomainEvent {
    public static let type = "AlertAcknowledged"
    public var id: String
    public var previousStatus: AlertStatus
    public var acknowledgedAt: Date

    public init(id: String, previousStatus: AlertStatus, acknowledgedAt: Date) {
        self.id = id
        self.previousStatus = previousStatus
        self.acknowledgedAt = acknowledgedAt
    }

    public var stream: String { Alert.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id
        case previousStatus = "previous_status"
        case acknowledgedAt = "acknowledged_at"
    }
}

/// Someone set the alert aside (`POST /api/alerts/{id}/dismiss`).
public struct AlertDismissed: DomainEvent {
    public static let type = "AlertDismissed"
    public var id: String
    public var previousStatus: AlertStatus
    public var dismissedAt: Date

    public init(id: String, previousStatus: AlertStatus, dismissedAt: Date) {
        self.id = id
        self.previousStatus = previousStatus
        self.dismissedAt = dismissedAt
    }

    public var stream: String { Alert.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id
        case previousStatus = "previous_status"
        case dismissedAt = "dismissed_at"
    }
}

/// An alert reached a channel (a webhook answered 2xx). A pending alert becomes `delivered`;
/// one already acknowledged or dismissed keeps its status and gets its `delivered_at`.
public struct AlertDelivered: DomainEvent {
    public static let type = "AlertDelivered"
    public var id: String
    public var channel: String
    /// Where to (a webhook's URL).
    public var target: String?
    public var attempts: Int
    public var deliveredAt: Date

    public init(id: String, channel: String, target: String? = nil, attempts: Int, deliveredAt: Date) {
        self.id = id
        self.channel = channel
        self.target = target
        self.attempts = attempts
        self.deliveredAt = deliveredAt
    }

    public var stream: String { Alert.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id, channel, target, attempts
        case deliveredAt = "delivered_at"
    }
}

/// A channel gave up on an alert after its last attempt (the delivery is parked); the alert's
/// status does not change.
public struct AlertDeliveryFailed: DomainEvent {
    public static let type = "AlertDeliveryFailed"
    public var id: String
    public var channel: String
    public var target: String?
    public var attempts: Int
    public var error: String
    public var failedAt: Date

    public init(id: String, channel: String, target: String?, attempts: Int, error: String, failedAt: Date) {
        self.id = id
        self.channel = channel
        self.target = target
        self.attempts = attempts
        self.error = error
        self.failedAt = failedAt
    }

    public var stream: String { Alert.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id, channel, target, attempts, error
        case failedAt = "failed_at"
    }
}

/// An alert as its stream folds (nil before it was triggered).
public struct Alert: Sendable, Hashable {
    public var id: String
    public var status: AlertStatus

    public static func stream(_ id: String) -> String { "alert-\(id)" }

    /// The id of the alert `rule` fires for security event `event`: the same every time (also
    /// the id of its `AlertTriggered` in the log).
    public static func uuid(rule: String, event: Int64) -> UUID {
        DeterministicID.uuid("alert", rule, String(event))
    }

    /// ``uuid(rule:event:)`` as the API writes it.
    public static func id(rule: String, event: Int64) -> String {
        uuid(rule: rule, event: event).uuidString.lowercased()
    }

    public static func fold(_ events: [(type: String, data: String)]) throws -> Alert? {
        var alert: Alert?
        for (type, data) in events {
            switch type {
            case AlertTriggered.type:
                alert = Alert(id: try AlertTriggered.decode(data).id, status: .pending)
            case AlertDelivered.type:
                if alert?.status == .pending { alert?.status = .delivered }
            case AlertAcknowledged.type:
                alert?.status = .acknowledged
            case AlertDismissed.type:
                alert?.status = .dismissed
            default:
                break
            }
        }
        return alert
    }

    /// `template` with its placeholders (``AlertRuleDefinition/placeholders``) filled in.
    public static func dedupKey(
        _ template: String, ruleId: String, cameraId: String, eventId: Int64, objectType: String?,
        severity: AlertSeverity
    ) -> String {
        let values = [
            "rule_id": ruleId, "camera_id": cameraId, "event_id": String(eventId), "object_type": objectType ?? "",
            "severity": severity.rawValue,
        ]
        var key = template
        for (name, value) in values { key = key.replacingOccurrences(of: "{\(name)}", with: value) }
        return key
    }
}
