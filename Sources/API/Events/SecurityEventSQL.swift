import Domain
import Foundation

/// How a security event row (alias `t`) is rendered and filtered, shared by the list, the
/// single item, search and export.
enum SecurityEventSQL {
    static let list = ListSpec(
        key: "events", table: "security_events", timeColumn: "started_at", idIsInteger: true, visible: "NOT t.hidden",
        totals: "security_event_totals")

    /// The level of `t.risk_score` under `thresholds` (NULL until analyzed).
    static func level(_ sql: inout SQLBuilder, _ thresholds: SeverityThresholds) -> String {
        """
        CASE WHEN t.risk_score IS NULL THEN NULL
             WHEN t.risk_score <= \(sql.bind(thresholds.lowMax)) THEN 'low'
             WHEN t.risk_score <= \(sql.bind(thresholds.mediumMax)) THEN 'medium'
             WHEN t.risk_score <= \(sql.bind(thresholds.highMax)) THEN 'high'
             ELSE 'critical' END
        """
    }

    /// The item JSON (CONTRACT: security events), with `extra` key/value pairs appended.
    /// `reviewed` and `notes` replace the row's values (a review just written, whose row the
    /// projection may not have updated yet).
    static func item(
        _ sql: inout SQLBuilder, _ thresholds: SeverityThresholds, extra: String = "",
        reviewed: Bool? = nil, notes: String? = nil
    ) -> String {
        let reviewed = reviewed.map { "\(sql.bind($0))::boolean" } ?? "t.reviewed"
        let notes = notes.map { "\(sql.bind($0))::text" } ?? "t.notes"
        return """
            json_build_object(
                'id', t.id, 'camera_id', t.camera_id,
                'started_at', vigil_ts(t.started_at), 'ended_at', vigil_ts(t.ended_at),
                'risk_score', t.risk_score, 'risk_level', \(level(&sql, thresholds)),
                'summary', t.summary, 'reasoning', t.reasoning, 'reviewed', \(reviewed), 'notes', \(notes),
                'detection_count', cardinality(t.detection_ids), 'detection_ids', t.detection_ids,
                'object_types', t.object_types,
                'thumbnail_url', CASE WHEN cardinality(t.detection_ids) > 0
                                      THEN '/api/detections/' || t.detection_ids[1] || '/image' END,
                'batch_id', t.batch_id, 'is_fast_path', t.is_fast_path\(extra))::text
            """
    }

    /// The list filters of the seeds: camera_id, risk_level, start_date, end_date, reviewed,
    /// object_type. Returns whether the only filter is the camera (then the totals table counts).
    @discardableResult
    static func filters(
        _ query: QueryParameters, _ sql: inout SQLBuilder, _ thresholds: SeverityThresholds
    ) throws -> Bool {
        let camera = query.string("camera_id")
        let level = try query.choice("risk_level", RiskLevel.self)
        let (start, end) = try query.dateRange()
        let reviewed = try query.bool("reviewed")
        let objectType = query.string("object_type")
        scope(camera: camera, start: start, end: end, &sql)
        if let level {
            if let scores = thresholds.scores(of: level) {
                sql.condition("t.risk_score BETWEEN \(sql.bind(scores.lowerBound)) AND \(sql.bind(scores.upperBound))")
            } else {
                sql.condition("false")
            }
        }
        if let reviewed { sql.condition("t.reviewed = \(sql.bind(reviewed))") }
        if let objectType { sql.condition("t.object_types @> ARRAY[\(sql.bind(objectType))::text]") }
        return level == nil && start == nil && end == nil && reviewed == nil && objectType == nil
    }

    /// The camera and the start-time range: what the list and the stats both narrow by.
    static func scope(camera: String?, start: Date?, end: Date?, _ sql: inout SQLBuilder) {
        if let camera { sql.condition("t.camera_id = \(sql.bind(camera))") }
        if let start { sql.condition("t.started_at >= \(sql.bind(start))") }
        if let end { sql.condition("t.started_at <= \(sql.bind(end))") }
    }
}
