import Domain
import EventStore
import Foundation
import PostgresNIO

/// What an alert rule is tested against (`POST /api/alerts/rules/{id}/test`): security events
/// (not hidden) with their detections, from the `security_events` and `detections` read models.
public struct AlertCandidatesReadModel: Sendable {
    let database: ReadDatabase

    public init(database: ReadDatabase) { self.database = database }

    struct DetectionRow: Decodable {
        var t: String?
        var c: Double?
        var x: Double?
        var y: Double?
    }

    /// The events `ids` names (nil: the newest `limit`), newest first. A detection's centre is
    /// normalised by its frame's size when the detection has one, else unknown.
    public func candidates(ids: [Int64]?, limit: Int) async throws -> [AlertCandidate] {
        var sql = SQLBuilder()
        if let ids { sql.condition("e.id = ANY(\(sql.bind(ids))::int8[])") }
        let statement = """
            SELECT e.id, e.camera_id, e.risk_score::int4, e.started_at,
                   coalesce((SELECT json_agg(json_build_object(
                       't', d.object_type, 'c', d.confidence,
                       'x', CASE WHEN d.video_width > 0 AND d.video_height > 0
                                 THEN (d.bbox_x + d.bbox_width / 2.0) / d.video_width END,
                       'y', CASE WHEN d.video_width > 0 AND d.video_height > 0
                                 THEN (d.bbox_y + d.bbox_height / 2.0) / d.video_height END) ORDER BY d.id)
                     FROM detections d WHERE d.id = ANY(e.detection_ids)), '[]')::text
            FROM security_events e
            WHERE NOT e.hidden AND \(sql.conjunction)
            ORDER BY e.started_at DESC, e.id DESC LIMIT \(sql.bind(limit))
            """
        var candidates: [AlertCandidate] = []
        for try await (id, camera, score, startedAt, detections) in try await database.rows(sql, statement).decode(
            (Int64, String, Int32?, Date, String).self)
        {
            let rows = (try? JSONDecoder().decode([DetectionRow].self, from: Data(detections.utf8))) ?? []
            candidates.append(
                AlertCandidate(
                    eventId: id, cameraId: camera, riskScore: score.map(Int.init), at: startedAt,
                    detections: rows.map { row in
                        var centre: (x: Double, y: Double)?
                        if let x = row.x, let y = row.y { centre = (x, y) }
                        return AlertCandidate.Detection(objectType: row.t ?? "", confidence: row.c ?? 0, centre: centre)
                    }))
        }
        return candidates
    }
}
