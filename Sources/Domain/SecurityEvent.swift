import Foundation

/// The batch aggregator opened a security event: detections of one camera, grouped. Stream
/// `secevent-<id>`; `id` is the event's public integer id, assigned by the writer.
public struct SecurityEventOpened: DomainEvent {
    public static let type = "SecurityEventOpened"
    public var id: Int64
    public var cameraId: String
    public var batchId: String
    public var startedAt: Date
    public var detectionIds: [Int64]
    public var objectTypes: [String]
    /// Analyzed at once as its own event (a high-confidence detection of a fast-path type).
    public var isFastPath: Bool

    public init(
        id: Int64, cameraId: String, batchId: String, startedAt: Date, detectionIds: [Int64], objectTypes: [String],
        isFastPath: Bool = false
    ) {
        self.id = id
        self.cameraId = cameraId
        self.batchId = batchId
        self.startedAt = startedAt
        self.detectionIds = detectionIds
        self.objectTypes = objectTypes
        self.isFastPath = isFastPath
    }

    public var stream: String { SecurityEvents.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id
        case cameraId = "camera_id"
        case batchId = "batch_id"
        case startedAt = "started_at"
        case detectionIds = "detection_ids"
        case objectTypes = "object_types"
        case isFastPath = "is_fast_path"
    }
}

/// The batch closed: its final detections.
public struct SecurityEventClosed: DomainEvent {
    public static let type = "SecurityEventClosed"
    public var id: Int64
    public var endedAt: Date
    public var detectionIds: [Int64]
    public var objectTypes: [String]

    public init(id: Int64, endedAt: Date, detectionIds: [Int64], objectTypes: [String]) {
        self.id = id
        self.endedAt = endedAt
        self.detectionIds = detectionIds
        self.objectTypes = objectTypes
    }

    public var stream: String { SecurityEvents.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id
        case endedAt = "ended_at"
        case detectionIds = "detection_ids"
        case objectTypes = "object_types"
    }
}

/// An analyzer scored the event. It carries the score, never a level: levels are derived from
/// the severity thresholds in force, so a threshold change re-classifies history.
public struct SecurityEventAnalyzed: DomainEvent {
    public static let type = "SecurityEventAnalyzed"
    public var id: Int64
    /// 0…100.
    public var riskScore: Int
    public var summary: String
    public var reasoning: String
    public var model: String?
    public var latencyMs: Int?

    public init(
        id: Int64, riskScore: Int, summary: String, reasoning: String, model: String? = nil, latencyMs: Int? = nil
    ) {
        self.id = id
        self.riskScore = riskScore
        self.summary = summary
        self.reasoning = reasoning
        self.model = model
        self.latencyMs = latencyMs
    }

    public var stream: String { SecurityEvents.stream(id) }

    enum CodingKeys: String, CodingKey {
        case id, summary, reasoning, model
        case riskScore = "risk_score"
        case latencyMs = "latency_ms"
    }
}

/// A person reviewed the event (`PATCH /api/events/{id}`); absent fields are unchanged.
public struct SecurityEventReviewed: DomainEvent {
    public static let type = "SecurityEventReviewed"
    public var id: Int64
    public var reviewed: Bool?
    /// nil: unchanged (absent from the payload); `.some(nil)`: cleared (`"notes": null`);
    /// `.some(text)`: set.
    public var notes: String??

    public init(id: Int64, reviewed: Bool?, notes: String??) {
        self.id = id
        self.reviewed = reviewed
        self.notes = notes
    }

    private enum CodingKeys: String, CodingKey { case id, reviewed, notes }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(Int64.self, forKey: .id)
        reviewed = try container.decodeIfPresent(Bool.self, forKey: .reviewed)
        // Present as null is "cleared", which `decodeIfPresent` would read as absent.
        notes = container.contains(.notes) ? .some(try container.decode(String?.self, forKey: .notes)) : nil
    }

    public var stream: String { SecurityEvents.stream(id) }
}

public enum SecurityEvents {
    public static func stream(_ id: Int64) -> String { "secevent-\(id)" }
}

/// A security event as its stream tells it: the fold of `secevent-<id>`, for reads back in
/// time. It keeps what the `security_events` read model keeps, under the same names (encoded,
/// it is a row of that table), and folds as that projection applies: closing, analysis and
/// review each set their own fields, the last one winning.
public struct SecurityEvent: Sendable, Hashable, Encodable {
    public var id: Int64
    public var cameraId: String
    public var batchId: String
    public var startedAt: Date
    public var endedAt: Date?
    public var riskScore: Int?
    public var summary: String?
    public var reasoning: String?
    public var model: String?
    public var reviewed = false
    public var notes: String?
    public var detectionIds: [Int64]
    public var objectTypes: [String]
    public var isFastPath: Bool

    enum CodingKeys: String, CodingKey {
        case id, summary, reasoning, model, reviewed, notes
        case cameraId = "camera_id"
        case batchId = "batch_id"
        case startedAt = "started_at"
        case endedAt = "ended_at"
        case riskScore = "risk_score"
        case detectionIds = "detection_ids"
        case objectTypes = "object_types"
        case isFastPath = "is_fast_path"
    }

    /// The event after its stream's `events` (type, data), in order; nil before it was opened.
    public static func fold(_ events: [(type: String, data: String)]) throws -> SecurityEvent? {
        var state: SecurityEvent?
        for event in events {
            switch event.type {
            case SecurityEventOpened.type:
                let opened = try SecurityEventOpened.decode(event.data)
                state = SecurityEvent(
                    id: opened.id, cameraId: opened.cameraId, batchId: opened.batchId, startedAt: opened.startedAt,
                    detectionIds: opened.detectionIds, objectTypes: opened.objectTypes, isFastPath: opened.isFastPath)
            case SecurityEventClosed.type:
                let closed = try SecurityEventClosed.decode(event.data)
                state?.endedAt = closed.endedAt
                state?.detectionIds = closed.detectionIds
                state?.objectTypes = closed.objectTypes
            case SecurityEventAnalyzed.type:
                let analyzed = try SecurityEventAnalyzed.decode(event.data)
                state?.riskScore = analyzed.riskScore
                state?.summary = analyzed.summary
                state?.reasoning = analyzed.reasoning
                state?.model = analyzed.model
            case SecurityEventReviewed.type:
                let review = try SecurityEventReviewed.decode(event.data)
                if let reviewed = review.reviewed { state?.reviewed = reviewed }
                if let notes = review.notes { state?.notes = notes }
            default:
                continue
            }
        }
        return state
    }
}

/// Every event type Vigil writes, for the schema check and for readers that dispatch on type.
public enum EventCatalog {
    public static let types: [any DomainEvent.Type] = [
        CameraRegistered.self, CameraUpdated.self, CameraRemoved.self,
        UniqueValueReserved.self, UniqueValueReleased.self,
        DetectionRecorded.self,
        SecurityEventOpened.self, SecurityEventClosed.self, SecurityEventAnalyzed.self, SecurityEventReviewed.self,
        ReanalysisRequested.self,
        SystemConfigChanged.self, SeverityThresholdsChanged.self, RateLimitsChanged.self,
        ApiKeyIssued.self, ApiKeyRevoked.self, CommandRejected.self,
        ZoneCreated.self, ZoneUpdated.self, ZoneDeleted.self,
        AlertRuleCreated.self, AlertRuleUpdated.self, AlertRuleDeleted.self,
        DeadLettersRequeued.self, DeadLettersCleared.self,
        AlertTriggered.self, AlertAcknowledged.self, AlertDismissed.self, AlertDelivered.self, AlertDeliveryFailed.self,
        AlertDeliverySuppressed.self,
        NotificationPreferencesChanged.self, CameraNotificationSettingChanged.self, QuietHoursSet.self,
        QuietHoursDeleted.self, NotificationTested.self,
        EntitySighted.self, EntityTrustChanged.self,
        RetentionApplied.self,
    ]
}
