import Foundation

/// A command the API refused (401, 403, 409, 422, 400 on a write route; 429 later): recorded so
/// the audit trail shows failures too. Stream `rejections-<yyyy-mm-dd>` (UTC). Recording is
/// rate-limited per client: `suppressed` counts the refusals of the same actor and address that
/// were not recorded since the last one that was.
public struct CommandRejected: DomainEvent {
    public static let type = "CommandRejected"
    /// What the command would have been (the audit action: `settings_changed`, …).
    public var action: String
    public var resourceType: String
    public var resourceId: String?
    public var method: String
    /// The request's path, without its query.
    public var path: String
    public var status: Int
    /// The answer's `detail` (for a 422, its messages).
    public var detail: String
    public var suppressed: Int?
    public var rejectedAt: Date

    public init(
        action: String, resourceType: String, resourceId: String?, method: String, path: String, status: Int,
        detail: String, suppressed: Int? = nil, rejectedAt: Date
    ) {
        self.action = action
        self.resourceType = resourceType
        self.resourceId = resourceId
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail
        self.suppressed = suppressed
        self.rejectedAt = rejectedAt
    }

    public var stream: String {
        "rejections-\(rejectedAt.formatted(Date.ISO8601FormatStyle(timeZone: .gmt).year().month().day()))"
    }

    enum CodingKeys: String, CodingKey {
        case action, method, path, status, detail, suppressed
        case resourceType = "resource_type"
        case resourceId = "resource_id"
        case rejectedAt = "rejected_at"
    }
}

/// One entry of the audit trail, as projected from one event of the log (CONTRACT: Audit).
public struct AuditEntry: Sendable, Hashable {
    public enum Status: String, Sendable, CaseIterable { case success, failure }

    public var action: String
    public var resourceType: String
    public var resourceId: String?
    public var status: Status
    /// `{"changes": {field: {"old", "new"}}}` and whatever else the action tells.
    public var details: [String: JSONValue]

    public init(
        action: String, resourceType: String, resourceId: String?, status: Status = .success,
        details: [String: JSONValue] = [:]
    ) {
        self.action = action
        self.resourceType = resourceType
        self.resourceId = resourceId
        self.status = status
        self.details = details
    }

    /// `{field: {"old": …, "new": …}}` for the fields whose value changed.
    public static func changes(_ pairs: [(String, old: JSONValue, new: JSONValue)]) -> JSONValue {
        var changes: [String: JSONValue] = [:]
        for (field, old, new) in pairs where old != new {
            changes[field] = .object(["old": old, "new": new])
        }
        return .object(changes)
    }

    /// `{field: {"old": …, "new": …}}` for the fields whose value differs between two states
    /// (a field one side lacks is null there; from `[:]`: every field a creation set).
    public static func changes(from old: [String: JSONValue], to new: [String: JSONValue]) -> JSONValue {
        changes(Set(old.keys).union(new.keys).sorted().map { ($0, old: old[$0] ?? .null, new: new[$0] ?? .null) })
    }
}

/// The state the audit trail remembers between events, to tell a change's old values: what the
/// event itself doesn't carry (a review's, a camera's previous fields).
public enum AuditMemory {
    /// A security event's review state before a review (`reviewed`, `notes`).
    public struct Review: Sendable, Hashable {
        public var reviewed: Bool
        public var notes: String?

        public init(reviewed: Bool = false, notes: String? = nil) {
            self.reviewed = reviewed
            self.notes = notes
        }
    }

    /// A camera's fields before an update.
    public struct CameraFields: Sendable, Hashable {
        public var name: String
        public var folderPath: String
        public var status: String

        public init(name: String, folderPath: String, status: String) {
            self.name = name
            self.folderPath = folderPath
            self.status = status
        }
    }
}

extension AuditEntry {
    /// The entry of a review, given the event's review state before it (`old`); the state after.
    public static func review(
        _ event: SecurityEventReviewed, old: AuditMemory.Review
    ) -> (
        AuditEntry, AuditMemory.Review
    ) {
        var new = old
        if let reviewed = event.reviewed { new.reviewed = reviewed }
        if let notes = event.notes { new.notes = notes }
        let changes = changes([
            ("reviewed", old: .bool(old.reviewed), new: .bool(new.reviewed)),
            ("notes", old: old.notes.map(JSONValue.string) ?? .null, new: new.notes.map(JSONValue.string) ?? .null),
        ])
        let entry = AuditEntry(
            action: "event_reviewed", resourceType: "event", resourceId: String(event.id),
            details: ["changes": changes])
        return (entry, new)
    }

    /// The entry of a camera's registration, and the fields the trail remembers of it.
    public static func cameraRegistered(_ event: CameraRegistered) -> (AuditEntry, AuditMemory.CameraFields) {
        let changes = changes([
            ("name", old: .null, new: .string(event.name)),
            ("folder_path", old: .null, new: .string(event.folderPath)),
            ("status", old: .null, new: .string(event.status.rawValue)),
        ])
        let entry = AuditEntry(
            action: "camera_created", resourceType: "camera", resourceId: event.id, details: ["changes": changes])
        return (entry, .init(name: event.name, folderPath: event.folderPath, status: event.status.rawValue))
    }

    /// The entry of a camera update, given the camera's fields before it (nil: unknown); the
    /// fields after.
    public static func cameraUpdate(
        _ event: CameraUpdated, old: AuditMemory.CameraFields?
    ) -> (
        AuditEntry, AuditMemory.CameraFields?
    ) {
        var pairs: [(String, old: JSONValue, new: JSONValue)] = []
        let text = { (value: String?) in value.map(JSONValue.string) ?? .null }
        if let name = event.name { pairs.append(("name", old: text(old?.name), new: .string(name))) }
        if let path = event.folderPath { pairs.append(("folder_path", old: text(old?.folderPath), new: .string(path))) }
        if let status = event.status {
            pairs.append(("status", old: text(old?.status), new: .string(status.rawValue)))
        }
        let new = old.map { fields in
            AuditMemory.CameraFields(
                name: event.name ?? fields.name, folderPath: event.folderPath ?? fields.folderPath,
                status: event.status?.rawValue ?? fields.status)
        }
        let entry = AuditEntry(
            action: "camera_updated", resourceType: "camera", resourceId: event.id, details: ["changes": changes(pairs)]
        )
        return (entry, new)
    }

    /// The entry of an event that carries everything it changed (nil: not an audited type, or
    /// one that needs ``AuditMemory``).
    public static func of(type: String, data: String) throws -> AuditEntry? {
        switch type {
        case ReanalysisRequested.type:
            let event = try ReanalysisRequested.decode(data)
            return AuditEntry(
                action: "ai_reevaluated", resourceType: "event", resourceId: String(event.id),
                details: event.reason.map { ["reason": .string($0)] } ?? [:])
        case SystemConfigChanged.type:
            let event = try SystemConfigChanged.decode(data)
            let changes = changes(
                event.changes.sorted { $0.key < $1.key }.map { ($0.key, old: $0.value.from, new: $0.value.to) })
            return AuditEntry(
                action: "config_updated", resourceType: "system_config", resourceId: "system",
                details: ["changes": changes])
        case SeverityThresholdsChanged.type:
            let event = try SeverityThresholdsChanged.decode(data)
            let number = { (value: Int) in JSONValue.number(Double(value)) }
            let changes = changes([
                ("low_max", old: number(event.previous.lowMax), new: number(event.lowMax)),
                ("medium_max", old: number(event.previous.mediumMax), new: number(event.mediumMax)),
                ("high_max", old: number(event.previous.highMax), new: number(event.highMax)),
            ])
            return AuditEntry(
                action: "settings_changed", resourceType: "severity_thresholds", resourceId: "severity",
                details: ["changes": changes])
        case RateLimitsChanged.type:
            let event = try RateLimitsChanged.decode(data)
            let (old, new) = (event.previous.fields, event.limits.fields)
            let changes = changes(new.keys.sorted().map { ($0, old: old[$0] ?? .null, new: new[$0] ?? .null) })
            return AuditEntry(
                action: "settings_changed", resourceType: "rate_limits", resourceId: "rate_limits",
                details: ["changes": changes])
        case CameraRegistered.type:
            return cameraRegistered(try CameraRegistered.decode(data)).0
        case CameraRemoved.type:
            let event = try CameraRemoved.decode(data)
            return AuditEntry(action: "camera_deleted", resourceType: "camera", resourceId: event.id)
        case ApiKeyIssued.type:
            let event = try ApiKeyIssued.decode(data)
            var details: [String: JSONValue] = [
                "changes": changes([("role", old: .null, new: .string(event.role.rawValue))]),
                "prefix": .string(event.prefix),
            ]
            if let expires = event.expiresAt { details["expires_at"] = .string(EventCoding.timestamp(expires)) }
            return AuditEntry(
                action: "api_key_created", resourceType: "api_key", resourceId: event.name, details: details)
        case ApiKeyRevoked.type:
            let event = try ApiKeyRevoked.decode(data)
            return AuditEntry(action: "api_key_revoked", resourceType: "api_key", resourceId: event.name)
        case ZoneCreated.type:
            let event = try ZoneCreated.decode(data)
            return AuditEntry(
                action: "zone_created", resourceType: "zone", resourceId: event.id,
                details: [
                    "camera_id": .string(event.cameraId), "changes": changes(from: [:], to: event.zone.fields),
                ])
        case ZoneUpdated.type:
            let event = try ZoneUpdated.decode(data)
            return AuditEntry(
                action: "zone_updated", resourceType: "zone", resourceId: event.id,
                details: [
                    "camera_id": .string(event.cameraId),
                    "changes": changes(from: event.previous.fields, to: event.zone.fields),
                ])
        case ZoneDeleted.type:
            let event = try ZoneDeleted.decode(data)
            return AuditEntry(
                action: "zone_deleted", resourceType: "zone", resourceId: event.id,
                details: ["camera_id": .string(event.cameraId)])
        case AlertRuleCreated.type:
            let event = try AlertRuleCreated.decode(data)
            return AuditEntry(
                action: "alert_rule_created", resourceType: "alert_rule", resourceId: event.id,
                details: ["changes": changes(from: [:], to: event.rule.fields)])
        case AlertRuleUpdated.type:
            let event = try AlertRuleUpdated.decode(data)
            return AuditEntry(
                action: "alert_rule_updated", resourceType: "alert_rule", resourceId: event.id,
                details: ["changes": changes(from: event.previous.fields, to: event.rule.fields)])
        case AlertRuleDeleted.type:
            let event = try AlertRuleDeleted.decode(data)
            return AuditEntry(action: "alert_rule_deleted", resourceType: "alert_rule", resourceId: event.id)
        case AlertAcknowledged.type:
            let event = try AlertAcknowledged.decode(data)
            return alert(event.id, from: event.previousStatus, to: .acknowledged)
        case AlertDismissed.type:
            let event = try AlertDismissed.decode(data)
            return alert(event.id, from: event.previousStatus, to: .dismissed)
        case NotificationPreferencesChanged.type:
            let event = try NotificationPreferencesChanged.decode(data)
            return AuditEntry(
                action: "notification_preferences_updated", resourceType: "notification_preferences",
                resourceId: "global",
                details: ["changes": changes(from: event.previous.fields, to: event.preferences.fields)])
        case CameraNotificationSettingChanged.type:
            let event = try CameraNotificationSettingChanged.decode(data)
            return AuditEntry(
                action: "camera_notification_updated", resourceType: "camera_notification", resourceId: event.cameraId,
                details: ["changes": changes(from: event.previous.fields, to: event.setting.fields)])
        case QuietHoursSet.type:
            let event = try QuietHoursSet.decode(data)
            return AuditEntry(
                action: event.previous == nil ? "quiet_hours_created" : "quiet_hours_updated",
                resourceType: "quiet_hours", resourceId: event.id,
                details: ["changes": changes(from: event.previous?.fields ?? [:], to: event.period.fields)])
        case QuietHoursDeleted.type:
            let event = try QuietHoursDeleted.decode(data)
            return AuditEntry(action: "quiet_hours_deleted", resourceType: "quiet_hours", resourceId: event.id)
        case EntityTrustChanged.type:
            let event = try EntityTrustChanged.decode(data)
            return AuditEntry(
                action: "entity_trust_changed", resourceType: "entity", resourceId: event.entityId,
                details: [
                    "changes": changes([
                        (
                            "trust_status", old: .string(event.previous.rawValue),
                            new: .string(event.trustStatus.rawValue)
                        )
                    ])
                ])
        case NotificationTested.type:
            let event = try NotificationTested.decode(data)
            return AuditEntry(
                action: "notification_tested", resourceType: "notification", resourceId: event.channel,
                status: event.succeeded == event.targets ? .success : .failure,
                details: [
                    "targets": .number(Double(event.targets)), "succeeded": .number(Double(event.succeeded)),
                ])
        case DeadLettersRequeued.type:
            let event = try DeadLettersRequeued.decode(data)
            return AuditEntry(
                action: "dlq_requeued", resourceType: "dlq", resourceId: event.queue,
                details: [
                    "count": .number(Double(event.count)), "target": .string(event.target),
                    "job_ids": .array(event.jobIds.map { .string($0) }),
                ])
        case DeadLettersCleared.type:
            let event = try DeadLettersCleared.decode(data)
            return AuditEntry(
                action: "dlq_cleared", resourceType: "dlq", resourceId: event.queue,
                details: ["count": .number(Double(event.count))])
        case RetentionApplied.type:
            let event = try RetentionApplied.decode(data)
            var details: [String: JSONValue] = [
                "cutoff": .string(Timestamp.format(event.cutoff)),
                "retention_days": .number(Double(event.retentionDays)),
                "log_events": .number(Double(event.logEvents)),
                "security_events": .number(Double(event.securityEvents)),
                "detections": .number(Double(event.detections)), "alerts": .number(Double(event.alerts)),
                "operational_logs": .number(Double(event.operationalLogs)),
            ]
            details["segment"] = event.segment.map { .string($0) } ?? .null
            details["sha256"] = event.sha256.map { .string($0) } ?? .null
            return AuditEntry(
                action: "cleanup_executed", resourceType: "system", resourceId: "retention", details: details)
        case CommandRejected.type:
            let event = try CommandRejected.decode(data)
            var details: [String: JSONValue] = [
                "method": .string(event.method), "path": .string(event.path),
                "status_code": .number(Double(event.status)), "detail": .string(event.detail),
            ]
            if let suppressed = event.suppressed { details["suppressed"] = .number(Double(suppressed)) }
            return AuditEntry(
                action: event.action, resourceType: event.resourceType, resourceId: event.resourceId,
                status: .failure, details: details)
        default:
            return nil
        }
    }

    /// `alert_<status>`: someone moved an alert from `old` to `status`.
    static func alert(_ id: String, from old: AlertStatus, to status: AlertStatus) -> AuditEntry {
        AuditEntry(
            action: "alert_\(status.rawValue)", resourceType: "alert", resourceId: id,
            details: ["changes": changes([("status", old: .string(old.rawValue), new: .string(status.rawValue))])])
    }

    /// Every event type the audit trail shows.
    public static let types: [String] = [
        SecurityEventReviewed.type, ReanalysisRequested.type, SystemConfigChanged.type,
        SeverityThresholdsChanged.type, RateLimitsChanged.type, CameraRegistered.type, CameraUpdated.type,
        CameraRemoved.type,
        ApiKeyIssued.type, ApiKeyRevoked.type, DeadLettersRequeued.type, DeadLettersCleared.type,
        ZoneCreated.type, ZoneUpdated.type, ZoneDeleted.type, AlertRuleCreated.type, AlertRuleUpdated.type,
        AlertRuleDeleted.type, AlertAcknowledged.type, AlertDismissed.type, NotificationPreferencesChanged.type,
        CameraNotificationSettingChanged.type, QuietHoursSet.type, QuietHoursDeleted.type, NotificationTested.type,
        EntityTrustChanged.type, RetentionApplied.type,
        CommandRejected.type,
    ]
}
