import Domain
import EventStore
import Foundation
import Logging
import PostgresNIO

/// What an alert rule is matched against: security events with their detections, from the
/// `security_events` and `detections` read models. The rule's test route reads it through the
/// pool (`POST /api/alerts/rules/{id}/test`), the rule engine on its own connection.
public struct AlertCandidatesReadModel: Sendable {
    let database: ReadDatabase

    public init(database: ReadDatabase) { self.database = database }

    struct DetectionRow: Decodable {
        var t: String?
        var c: Double?
        var x: Double?
        var y: Double?
    }

    /// The events `ids` names (nil: the newest `limit`), not hidden, newest first.
    public func candidates(ids: [Int64]?, limit: Int) async throws -> [AlertCandidate] {
        try await Self.decode(try await database.rows(Self.query(ids: ids, limit: limit, hidden: false)))
    }

    /// The events `ids` names, hidden or not, on `connection` (the rule engine's: it decides
    /// on each analysis as it comes, whatever happens to the event later).
    public static func candidates(
        ids: [Int64], on connection: PostgresConnection, logger: Logger
    ) async throws -> [AlertCandidate] {
        try await decode(try await connection.query(query(ids: ids, limit: ids.count, hidden: true), logger: logger))
    }

    /// A detection's centre is normalised by its frame's size when the detection has one, else
    /// unknown.
    static func query(ids: [Int64]?, limit: Int, hidden: Bool) -> PostgresQuery {
        var sql = SQLBuilder()
        if let ids { sql.condition("e.id = ANY(\(sql.bind(ids))::int8[])") }
        if !hidden { sql.condition("NOT e.hidden") }
        let statement = """
            SELECT e.id, e.camera_id, e.risk_score::int4, e.started_at,
                   coalesce((SELECT json_agg(json_build_object(
                       't', d.object_type, 'c', d.confidence,
                       'x', CASE WHEN d.video_width > 0 AND d.video_height > 0
                                 THEN (d.bbox_x + d.bbox_width / 2.0) / d.video_width END,
                       'y', CASE WHEN d.video_width > 0 AND d.video_height > 0
                                 THEN (d.bbox_y + d.bbox_height / 2.0) / d.video_height END) ORDER BY d.id)
                     FROM public.detections d WHERE d.id = ANY(e.detection_ids)), '[]')::text
            FROM public.security_events e
            WHERE \(sql.conjunction)
            ORDER BY e.started_at DESC, e.id DESC LIMIT \(sql.bind(limit))
            """
        return sql.query(statement)
    }

    static func decode<Rows: AsyncSequence>(_ rows: Rows) async throws -> [AlertCandidate]
    where Rows.Element == PostgresRow {
        var candidates: [AlertCandidate] = []
        for try await row in rows {
            let (id, camera, score, startedAt, detections) = try row.decode((Int64, String, Int32?, Date, String).self)
            let items = (try? JSONDecoder().decode([DetectionRow].self, from: Data(detections.utf8))) ?? []
            candidates.append(
                AlertCandidate(
                    eventId: id, cameraId: camera, riskScore: score.map(Int.init), at: startedAt,
                    detections: items.map { item in
                        var centre: (x: Double, y: Double)?
                        if let x = item.x, let y = item.y { centre = (x, y) }
                        return AlertCandidate.Detection(
                            objectType: item.t ?? "", confidence: item.c ?? 0, centre: centre)
                    }))
        }
        return candidates
    }
}
