import Domain
import EventStore
import Hummingbird
import PostgresNIO

/// How a detection row (alias `t`) is rendered.
enum DetectionSQL {
    static let list = ListSpec(
        key: "detections", table: "detections", timeColumn: "detected_at", idIsInteger: true, visible: "NOT t.hidden",
        totals: "detection_totals")

    static let item = """
        json_build_object(
            'id', t.id, 'camera_id', t.camera_id, 'file_path', t.file_path, 'file_type', t.file_type,
            'detected_at', vigil_ts(t.detected_at), 'object_type', t.object_type, 'confidence', t.confidence,
            'bbox_x', t.bbox_x, 'bbox_y', t.bbox_y, 'bbox_width', t.bbox_width, 'bbox_height', t.bbox_height,
            'thumbnail_path', t.thumbnail_path, 'media_type', t.media_type, 'duration', t.duration,
            'video_codec', t.video_codec, 'video_width', t.video_width, 'video_height', t.video_height,
            'enrichment_data', t.enrichment_data)::text
        """
}

/// `/api/detections`: list (camera_id, object_type, start_date, end_date, min_confidence) and one.
struct DetectionsController<Context: RequestContext> {
    let store: EventStore
    let appender: GroupCommitAppender
    let workerKey: String?
    var eventTimes = EventTimeWindow.standard

    func addRoutes(to router: Router<Context>) {
        let detections = router.group("/api/detections")
        DetectionIngest(store: store, appender: appender, workerKey: workerKey, eventTimes: eventTimes)
            .addRoutes(to: detections)
        detections.get(use: list)
        detections.get("{detection_id}", use: get)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let page = try PageRequest(query)
        let camera = query.string("camera_id")
        let objectType = query.string("object_type")
        let (start, end) = try query.dateRange()
        let minConfidence = try query.double("min_confidence", in: 0...1)
        var sql = SQLBuilder()
        if let camera { sql.condition("t.camera_id = \(sql.bind(camera))") }
        if let objectType { sql.condition("t.object_type = \(sql.bind(objectType))") }
        if let start { sql.condition("t.detected_at >= \(sql.bind(start))") }
        if let end { sql.condition("t.detected_at <= \(sql.bind(end))") }
        if let minConfidence { sql.condition("t.confidence >= \(sql.bind(minConfidence))") }
        let onlyCamera = objectType == nil && start == nil && end == nil && minConfidence == nil
        let count = onlyCamera ? DetectionSQL.list.totalsCount(camera: camera, &sql) : nil
        return try await listPage(
            DetectionSQL.list, item: DetectionSQL.item, filters: sql, countSQL: count, page: page,
            client: store.client, logger: store.logger)
    }

    @Sendable func get(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.integerID("detection_id")
        return try await itemResponse(
            notFound: "Detection \(id) not found", client: store.client, logger: store.logger
        ) { sql in
            "SELECT \(DetectionSQL.item) FROM detections t WHERE t.id = \(sql.bind(id)) AND NOT t.hidden"
        }
    }
}
