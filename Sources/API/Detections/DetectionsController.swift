import Domain
import EventStore
import Hummingbird
import Projections

/// `/api/detections`: list (camera_id, object_type, start_date, end_date, min_confidence), one,
/// and ingest (``DetectionIngest``).
struct DetectionsController<Context: RequestContext> {
    let detections: DetectionsReadModel
    let cameras: KnownCameras
    let store: EventStore
    let appender: GroupCommitAppender
    var eventTimes = EventTimeWindow.standard

    func addRoutes(to router: Router<Context>) {
        let group = router.group("/api/detections")
        DetectionIngest(
            store: store, appender: appender, detections: detections, cameras: cameras,
            ids: IDBlocks(.detections, store: store), eventTimes: eventTimes
        )
        .addRoutes(to: group)
        group.get(use: list)
        group.get("{detection_id}", use: get)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let page = try PageRequest(query)
        let camera = query.string("camera_id")
        let objectType = query.string("object_type")
        let (start, end) = try query.dateRange()
        let minConfidence = try query.double("min_confidence", in: 0...1)
        let filter = DetectionFilter(
            camera: camera, objectType: objectType, start: start, end: end, minConfidence: minConfidence)
        return page.response(try await detections.list(filter, page: page.bounds), key: "detections")
    }

    @Sendable func get(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.integerID("detection_id")
        return try itemResponse(try await detections.item(id), notFound: "Detection \(id) not found")
    }
}
