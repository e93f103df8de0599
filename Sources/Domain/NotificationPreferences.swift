import Foundation

/// The sound a client plays for a notification (the seeds' choices).
public enum NotificationSound: String, Codable, Sendable, CaseIterable {
    case none, `default`, alert, chime, urgent
}

/// The global notification preferences (CONTRACT: notification preferences): whether alerts
/// are delivered at all, and which risk levels are.
public struct NotificationPreferences: Codable, Sendable, Hashable {
    public var enabled: Bool
    public var sound: NotificationSound
    /// The risk levels whose alerts are delivered.
    public var riskFilters: [RiskLevel]

    public static let defaults = NotificationPreferences(
        enabled: true, sound: .default, riskFilters: RiskLevel.allCases)

    public init(enabled: Bool, sound: NotificationSound, riskFilters: [RiskLevel]) {
        self.enabled = enabled
        self.sound = sound
        self.riskFilters = riskFilters
    }

    public var fields: [String: JSONValue] { EventCoding.fields(of: self) }

    enum CodingKeys: String, CodingKey {
        case enabled, sound
        case riskFilters = "risk_filters"
    }
}

/// One camera's notification setting: delivered or not, and from which score.
public struct CameraNotificationSetting: Codable, Sendable, Hashable {
    public var enabled: Bool
    /// Alerts of this camera below this score are not delivered (nil: any score).
    public var riskThreshold: Int?

    public static let defaults = CameraNotificationSetting(enabled: true, riskThreshold: nil)

    public init(enabled: Bool, riskThreshold: Int?) {
        self.enabled = enabled
        self.riskThreshold = riskThreshold
    }

    public var fields: [String: JSONValue] { EventCoding.fields(of: self) }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(enabled, forKey: .enabled)
        try container.encode(riskThreshold, forKey: .riskThreshold)
    }

    enum CodingKeys: String, CodingKey {
        case enabled
        case riskThreshold = "risk_threshold"
    }
}

/// A period in which alerts are not delivered (they are still raised): `[start, end)` on its
/// days, in its time zone; a start after the end runs past midnight and belongs to the day it
/// started on.
public struct QuietHours: Codable, Sendable, Hashable {
    public var label: String
    /// `HH:MM:SS`.
    public var startTime: String
    public var endTime: String
    /// Full day names, `monday` … `sunday`, in week order.
    public var days: [String]
    public var timezone: String

    public static let weekdays = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

    public init(label: String, startTime: String, endTime: String, days: [String], timezone: String = "UTC") {
        self.label = label
        self.startTime = startTime
        self.endTime = endTime
        self.days = days
        self.timezone = timezone
    }

    /// Seconds after midnight of `HH:MM` or `HH:MM:SS`; nil when it isn't one.
    public static func seconds(_ text: String) -> Int? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (2...3).contains(parts.count), parts.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isASCII) }),
            let hours = Int(parts[0]), let minutes = Int(parts[1]), (0..<24).contains(hours),
            (0..<60).contains(minutes)
        else { return nil }
        let seconds = parts.count == 3 ? Int(parts[2]) : 0
        guard let seconds, (0..<60).contains(seconds) else { return nil }
        return hours * 3600 + minutes * 60 + seconds
    }

    /// `HH:MM:SS` of a valid time.
    public static func normalized(_ text: String) -> String? {
        guard let total = seconds(text) else { return nil }
        return String(format: "%02d:%02d:%02d", total / 3600, total / 60 % 60, total % 60)
    }

    /// Whether `date` falls in the period.
    public func holds(_ date: Date) -> Bool {
        guard let zone = TimeZone(identifier: timezone), let start = Self.seconds(startTime),
            let end = Self.seconds(endTime)
        else { return false }
        return WeeklyWindow.holds(date, start: start, end: end, zone: zone) { days.contains(Self.weekdays[$0]) }
    }

    public var fields: [String: JSONValue] { EventCoding.fields(of: self) }

    enum CodingKeys: String, CodingKey {
        case label, days, timezone
        case startTime = "start_time"
        case endTime = "end_time"
    }
}

/// `PUT`/`PATCH /api/notification-preferences`: the preferences now and before.
public struct NotificationPreferencesChanged: DomainEvent {
    public static let type = "NotificationPreferencesChanged"
    public var preferences: NotificationPreferences
    public var previous: NotificationPreferences
    public var changedAt: Date

    public static let streamName = "notification-preferences"

    public init(preferences: NotificationPreferences, previous: NotificationPreferences, changedAt: Date) {
        self.preferences = preferences
        self.previous = previous
        self.changedAt = changedAt
    }

    public var stream: String { Self.streamName }

    public static func fold(_ events: [(type: String, data: String)]) throws -> NotificationPreferences {
        try events.last { $0.type == type }.map { try decode($0.data).preferences } ?? .defaults
    }

    enum CodingKeys: String, CodingKey {
        case preferences, previous
        case changedAt = "changed_at"
    }
}

/// `PUT`/`PATCH /api/notification-preferences/cameras/{camera_id}`.
public struct CameraNotificationSettingChanged: DomainEvent {
    public static let type = "CameraNotificationSettingChanged"
    public var cameraId: String
    public var setting: CameraNotificationSetting
    public var previous: CameraNotificationSetting
    public var changedAt: Date

    public init(
        cameraId: String, setting: CameraNotificationSetting, previous: CameraNotificationSetting, changedAt: Date
    ) {
        self.cameraId = cameraId
        self.setting = setting
        self.previous = previous
        self.changedAt = changedAt
    }

    public static func stream(_ cameraId: String) -> String { "notification-camera-\(cameraId)" }
    public var stream: String { Self.stream(cameraId) }

    public static func fold(_ events: [(type: String, data: String)]) throws -> CameraNotificationSetting {
        try events.last { $0.type == type }.map { try decode($0.data).setting } ?? .defaults
    }

    enum CodingKeys: String, CodingKey {
        case setting, previous
        case cameraId = "camera_id"
        case changedAt = "changed_at"
    }
}

/// A quiet-hours period made, changed (with what it was) or deleted: stream `quiet-hours-<id>`.
public struct QuietHoursSet: DomainEvent {
    public static let type = "QuietHoursSet"
    public var id: String
    public var period: QuietHours
    /// nil: made now.
    public var previous: QuietHours?
    public var setAt: Date

    public init(id: String, period: QuietHours, previous: QuietHours?, setAt: Date) {
        self.id = id
        self.period = period
        self.previous = previous
        self.setAt = setAt
    }

    public static func stream(_ id: String) -> String { "quiet-hours-\(id)" }
    public var stream: String { Self.stream(id) }

    /// The period as its stream folds (nil: never made, or deleted).
    public static func fold(_ events: [(type: String, data: String)]) throws -> QuietHours? {
        var period: QuietHours?
        for (type, data) in events {
            if type == Self.type { period = try decode(data).period }
            if type == QuietHoursDeleted.type { period = nil }
        }
        return period
    }

    enum CodingKeys: String, CodingKey {
        case id, period, previous
        case setAt = "set_at"
    }
}

public struct QuietHoursDeleted: DomainEvent {
    public static let type = "QuietHoursDeleted"
    public var id: String
    public var deletedAt: Date

    public init(id: String, deletedAt: Date) {
        self.id = id
        self.deletedAt = deletedAt
    }

    public var stream: String { QuietHoursSet.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id
        case deletedAt = "deleted_at"
    }
}

/// A channel did not send an alert because the notification preferences said not to (quiet
/// hours, disabled, a risk filter, a camera's setting): the alert itself stands.
public struct AlertDeliverySuppressed: DomainEvent {
    public static let type = "AlertDeliverySuppressed"
    public var id: String
    public var channel: String
    public var target: String?
    public var reason: String
    public var suppressedAt: Date

    public init(id: String, channel: String, target: String?, reason: String, suppressedAt: Date) {
        self.id = id
        self.channel = channel
        self.target = target
        self.reason = reason
        self.suppressedAt = suppressedAt
    }

    public var stream: String { Alert.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id, channel, target, reason
        case suppressedAt = "suppressed_at"
    }
}

/// Whether an alert is delivered under the preferences, and if not, why.
public enum NotificationPolicy {
    /// nil: deliver; else the reason it is not.
    public static func suppression(
        level: RiskLevel, score: Int, at date: Date, preferences: NotificationPreferences,
        camera: CameraNotificationSetting, quietHours: [QuietHours]
    ) -> String? {
        if !preferences.enabled { return "notifications are off" }
        if !preferences.riskFilters.contains(level) { return "risk level \(level.rawValue) is filtered out" }
        if !camera.enabled { return "notifications are off for this camera" }
        if let threshold = camera.riskThreshold, score < threshold {
            return "risk score \(score) is below the camera's threshold \(threshold)"
        }
        if let quiet = quietHours.first(where: { $0.holds(date) }) { return "quiet hours: \(quiet.label)" }
        return nil
    }
}

/// `POST /api/notification/test`: a test notification was sent on a channel, with how it went.
public struct NotificationTested: DomainEvent {
    public static let type = "NotificationTested"
    public var channel: String
    public var targets: Int
    public var succeeded: Int
    public var testedAt: Date

    public static let streamName = "notification-tests"

    public init(channel: String, targets: Int, succeeded: Int, testedAt: Date) {
        self.channel = channel
        self.targets = targets
        self.succeeded = succeeded
        self.testedAt = testedAt
    }

    public var stream: String { Self.streamName }

    enum CodingKeys: String, CodingKey {
        case channel, targets, succeeded
        case testedAt = "tested_at"
    }
}
