import Domain
import Projections

extension SecurityEventFilter {
    /// The seeds' list filters from the query: camera_id, risk_level, start_date, end_date,
    /// reviewed, object_type (checked in that order: the first bad one is the answer).
    init(_ query: QueryParameters) throws {
        let camera = query.string("camera_id")
        let level = try query.choice("risk_level", RiskLevel.self)
        let (start, end) = try query.dateRange()
        let reviewed = try query.bool("reviewed")
        self.init(
            camera: camera, level: level, start: start, end: end, reviewed: reviewed,
            objectType: query.string("object_type"))
    }
}
