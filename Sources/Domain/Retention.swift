import Foundation

/// A retention run (`POST /api/system/cleanup`): what it archived into which segment and took
/// out of the hot table. Appended in the transaction that removes them, so the audit trail
/// (`cleanup_executed`) and the log agree on every run, also one that found nothing.
public struct RetentionApplied: DomainEvent {
    public static let type = "RetentionApplied"
    /// Security events that started before this were taken.
    public var cutoff: Date
    public var retentionDays: Int
    /// The segment's file name in the archive folder, and its SHA-256 (nil: nothing taken).
    public var segment: String?
    public var sha256: String?
    public var logEvents: Int
    public var securityEvents: Int
    public var detections: Int
    public var alerts: Int
    public var operationalLogs: Int

    public init(
        cutoff: Date, retentionDays: Int, segment: String?, sha256: String?, logEvents: Int, securityEvents: Int,
        detections: Int, alerts: Int, operationalLogs: Int
    ) {
        self.cutoff = cutoff
        self.retentionDays = retentionDays
        self.segment = segment
        self.sha256 = sha256
        self.logEvents = logEvents
        self.securityEvents = securityEvents
        self.detections = detections
        self.alerts = alerts
        self.operationalLogs = operationalLogs
    }

    public var stream: String { Retention.stream }

    enum CodingKeys: String, CodingKey {
        case cutoff, segment, sha256, detections, alerts
        case retentionDays = "retention_days"
        case logEvents = "log_events"
        case securityEvents = "security_events"
        case operationalLogs = "operational_logs"
    }
}

public enum Retention {
    /// The stream of every retention run.
    public static let stream = "retention"

    /// Every type of event retention takes out of the hot table: a security event's stream's,
    /// its alerts' and its detections'. A read model of any of them is rebuilt after a run.
    public static let archivedTypes: Set<String> = [
        SecurityEventOpened.type, SecurityEventClosed.type, SecurityEventAnalyzed.type, SecurityEventReviewed.type,
        ReanalysisRequested.type, AlertTriggered.type, AlertAcknowledged.type, AlertDismissed.type,
        AlertDelivered.type, AlertDeliveryFailed.type, AlertDeliverySuppressed.type, DetectionRecorded.type,
    ]

    /// The cutoff for `days` of retention at `now`: security events that started before it go.
    public static func cutoff(days: Int, now: Date = Date()) -> Date {
        now.addingTimeInterval(-Double(days) * 86_400)
    }
}
