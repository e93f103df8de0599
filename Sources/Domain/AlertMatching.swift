import Foundation

/// What a rule is matched against: a security event as analyzed, with its detections.
public struct AlertCandidate: Sendable, Hashable {
    public struct Detection: Sendable, Hashable {
        public var objectType: String
        public var confidence: Double
        /// The bounding box's centre, normalised to 0…1 of the frame (nil: the frame's size is
        /// unknown, so no zone can be said to hold it).
        public var centre: (x: Double, y: Double)? {
            get { centreX.flatMap { x in centreY.map { (x, $0) } } }
            set {
                centreX = newValue?.x
                centreY = newValue?.y
            }
        }
        var centreX: Double?
        var centreY: Double?

        public init(objectType: String, confidence: Double, centre: (x: Double, y: Double)? = nil) {
            self.objectType = objectType
            self.confidence = confidence
            self.centreX = centre?.x
            self.centreY = centre?.y
        }
    }

    public var eventId: Int64
    public var cameraId: String
    /// nil: not analyzed yet.
    public var riskScore: Int?
    /// When it happened (the schedule is checked against this).
    public var at: Date
    public var detections: [Detection]

    public init(eventId: Int64, cameraId: String, riskScore: Int?, at: Date, detections: [Detection]) {
        self.eventId = eventId
        self.cameraId = cameraId
        self.riskScore = riskScore
        self.at = at
        self.detections = detections
    }
}

/// Whether a rule fires for a candidate, and if not, every reason why not (the rule's test
/// route shows them). Pure: the rule engine and the test route share it.
public enum AlertMatching {
    public struct Verdict: Sendable, Hashable {
        public var matches: Bool { reasons.isEmpty }
        /// Why the rule does not fire (empty: it does).
        public var reasons: [String]
        /// The object types of the detections that meet every detection condition, in the
        /// candidate's order, each once.
        public var objectTypes: [String] = []
    }

    /// `zones`: the rule's zones by id (of any camera); a zone the rule names that is missing or
    /// disabled holds nothing.
    public static func evaluate(
        _ rule: AlertRuleDefinition, _ candidate: AlertCandidate, zones: [String: Zone] = [:]
    ) -> Verdict {
        var reasons: [String] = []
        if !rule.enabled { reasons.append("the rule is disabled") }
        if let threshold = rule.riskThreshold {
            if let score = candidate.riskScore {
                if score < threshold { reasons.append("risk score \(score) is below \(threshold)") }
            } else {
                reasons.append("the event is not analyzed yet")
            }
        }
        if let cameras = rule.cameraIds, !cameras.contains(candidate.cameraId) {
            reasons.append("camera \(candidate.cameraId) is not one of the rule's")
        }
        // The detections every detection condition holds for: one must hold them all.
        var detections = candidate.detections
        if let types = rule.objectTypes {
            detections = detections.filter { types.contains($0.objectType) }
            if detections.isEmpty { reasons.append("no detection of \(types.joined(separator: ", "))") }
        }
        if let minimum = rule.minConfidence, !detections.isEmpty {
            detections = detections.filter { $0.confidence >= minimum }
            if detections.isEmpty { reasons.append("no such detection with confidence ≥ \(minimum)") }
        }
        if let zoneIds = rule.zoneIds, !zoneIds.isEmpty, !detections.isEmpty {
            let areas = zoneIds.compactMap { zones[$0] }.filter {
                $0.definition.enabled && $0.cameraId == candidate.cameraId
            }
            let inside = detections.filter { detection in
                guard let centre = detection.centre else { return false }
                return areas.contains { contains($0.definition, centre) }
            }
            if inside.isEmpty { reasons.append("no such detection inside the rule's zones on this camera") }
            detections = inside
        }
        if let schedule = rule.schedule, let why = outside(schedule, candidate.at) { reasons.append(why) }
        var seen = Set<String>()
        return Verdict(reasons: reasons, objectTypes: detections.map(\.objectType).filter { seen.insert($0).inserted })
    }

    /// Why `date` lies outside `schedule` (nil: inside): a ``WeeklyWindow`` in the schedule's
    /// time zone, on its days (every day when it names none).
    public static func outside(_ schedule: AlertSchedule, _ date: Date) -> String? {
        guard let zone = TimeZone(identifier: schedule.timezone),
            let start = AlertSchedule.minutes(schedule.startTime), let end = AlertSchedule.minutes(schedule.endTime)
        else { return "the schedule is not valid" }
        let days = Set(schedule.days ?? AlertSchedule.weekdays)
        let inWindow = WeeklyWindow.holds(date, start: start * 60, end: end * 60, zone: zone) {
            days.contains(AlertSchedule.weekdays[$0])
        }
        return inWindow
            ? nil
            : "\(schedule.startTime)–\(schedule.endTime) \(schedule.timezone) on \(days.count == 7 ? "every day" : AlertSchedule.weekdays.filter(days.contains).joined(separator: ", ")) does not hold it"
    }

    /// Whether `zone` holds `point` (normalised): a rectangle by its points' bounding box, a
    /// polygon by ray casting (a point on an edge may fall either way).
    public static func contains(_ zone: ZoneDefinition, _ point: (x: Double, y: Double)) -> Bool {
        let points = zone.coordinates.filter { $0.count == 2 }
        guard !points.isEmpty else { return false }
        if zone.shape == .rectangle {
            let xs = points.map { $0[0] }
            let ys = points.map { $0[1] }
            return xs.min()! <= point.x && point.x <= xs.max()! && ys.min()! <= point.y && point.y <= ys.max()!
        }
        var inside = false
        var j = points.count - 1
        for i in points.indices {
            let (xi, yi, xj, yj) = (points[i][0], points[i][1], points[j][0], points[j][1])
            if (yi > point.y) != (yj > point.y), point.x < (xj - xi) * (point.y - yi) / (yj - yi) + xi {
                inside.toggle()
            }
            j = i
        }
        return inside
    }
}
