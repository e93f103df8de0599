import Foundation

/// Someone asked for a security event to be analyzed again (`POST /api/events/{id}/reanalyse`).
/// The earlier analyses stay in the event's history; the newest one is the event's score.
public struct ReanalysisRequested: DomainEvent {
    public static let type = "ReanalysisRequested"
    public var id: Int64
    public var reason: String?

    public init(id: Int64, reason: String? = nil) {
        self.id = id
        self.reason = reason
    }

    public var stream: String { SecurityEvents.stream(id) }
}

/// A job on the Redis list `analysis_queue`: analyze security event `eventId`.
///
/// `jobId` is derived from the event that caused it (the batch's close, or the reanalysis
/// request), so a job published twice is analyzed once: the analysis appended for a job gets an
/// id derived from the job (``analysisEventID``).
public struct AnalysisJob: Codable, Sendable, Hashable {
    public enum Reason: String, Codable, Sendable {
        case batchClosed = "batch_closed"
        case fastPath = "fast_path"
        case reanalysis
    }

    public var jobId: UUID
    public var eventId: Int64
    public var cameraId: String
    public var reason: Reason
    public var startedAt: Date
    public var endedAt: Date?
    public var detectionIds: [Int64]
    public var objectTypes: [String]
    public var attempts: Int
    public var lastError: String?
    /// When the job first failed (nil: it has not failed yet).
    public var firstFailedAt: Date?
    public var enqueuedAt: Date

    public init(
        jobId: UUID, eventId: Int64, cameraId: String, reason: Reason, startedAt: Date, endedAt: Date?,
        detectionIds: [Int64], objectTypes: [String], attempts: Int = 0, lastError: String? = nil, enqueuedAt: Date
    ) {
        self.jobId = jobId
        self.eventId = eventId
        self.cameraId = cameraId
        self.reason = reason
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.detectionIds = detectionIds
        self.objectTypes = objectTypes
        self.attempts = attempts
        self.lastError = lastError
        self.enqueuedAt = enqueuedAt
    }

    /// The id of the `SecurityEventAnalyzed` that answers this job.
    public var analysisEventID: UUID { Self.analysisEventID(job: jobId) }

    public static func analysisEventID(job: UUID) -> UUID {
        DeterministicID.uuid("SecurityEventAnalyzed", job.uuidString)
    }

    public func encoded() throws -> String { String(decoding: try EventCoding.encoder.encode(self), as: UTF8.self) }
    public static func decode(_ text: String) throws -> AnalysisJob {
        try EventCoding.decoder.decode(AnalysisJob.self, from: Data(text.utf8))
    }

    enum CodingKeys: String, CodingKey {
        case reason, attempts
        case jobId = "job_id"
        case eventId = "event_id"
        case cameraId = "camera_id"
        case startedAt = "started_at"
        case endedAt = "ended_at"
        case detectionIds = "detection_ids"
        case objectTypes = "object_types"
        case lastError = "last_error"
        case firstFailedAt = "first_failed_at"
        case enqueuedAt = "enqueued_at"
    }
}

/// Vigil's built-in analyzer: a transparent score from what was seen, how much, and when —
/// no model, so a fresh install shows risk levels at once. An LLM worker replaces it by taking
/// jobs from the same queue (and `VIGIL_ANALYZER=off`).
public enum HeuristicAnalyzer {
    public static let model = "vigil-heuristic-1"

    /// Base weight per object type; unknown types weigh like an animal.
    static let weights: [String: Int] = [
        "person": 45, "package": 30, "truck": 25, "car": 20, "bicycle": 20, "motorcycle": 20,
        "dog": 8, "cat": 5, "bird": 2,
    ]

    public struct Result: Sendable, Hashable {
        public var riskScore: Int
        public var summary: String
        public var reasoning: String
    }

    /// Scores a batch: the heaviest object type, plus a little for each other type and for
    /// many detections, plus night hours (22:00–06:00 camera-local; cameras report UTC), plus
    /// the fast path (a high-confidence person). The summary says what was seen and never names a
    /// level: the level shown next to it is derived from the score under the thresholds in force
    /// when it is read, and a stored word would contradict it after a threshold change.
    public static func analyze(
        objectTypes: [String], detectionCount: Int, startedAt: Date, isFastPath: Bool,
        timeZone: TimeZone = .gmt
    ) -> Result {
        let types = objectTypes.isEmpty ? ["unknown"] : objectTypes
        let ranked = types.map { ($0, weights[$0] ?? 8) }.sorted { $0.1 > $1.1 }
        var score = ranked[0].1
        var reasons = ["\(ranked[0].0) seen (+\(ranked[0].1))"]
        let others = min(ranked.count - 1, 3) * 5
        if others > 0 {
            score += others
            reasons.append("\(ranked.count - 1) other object type(s) (+\(others))")
        }
        let activity = min(max(detectionCount - 1, 0) * 2, 15)
        if activity > 0 {
            score += activity
            reasons.append("\(detectionCount) detections (+\(activity))")
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let hour = calendar.component(.hour, from: startedAt)
        if hour >= 22 || hour < 6 {
            score += 25
            reasons.append("at night, \(hour):00 (+25)")
        }
        if isFastPath {
            score += 10
            reasons.append("high-confidence person, fast path (+10)")
        }
        score = min(max(score, 0), 100)
        let summary = "Seen: " + types.joined(separator: ", ")
        return Result(
            riskScore: score, summary: summary,
            reasoning: reasons.joined(separator: "; ") + ". Score \(score).")
    }
}
