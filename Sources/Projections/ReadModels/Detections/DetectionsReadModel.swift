import Domain
import EventStore
import Foundation
import PostgresNIO

/// Which detections `/api/detections` lists.
public struct DetectionFilter: Sendable {
    public var camera: String?
    public var objectType: String?
    public var start: Date?
    public var end: Date?
    public var minConfidence: Double?

    public init(
        camera: String? = nil, objectType: String? = nil, start: Date? = nil, end: Date? = nil,
        minConfidence: Double? = nil
    ) {
        self.camera = camera
        self.objectType = objectType
        self.start = start
        self.end = end
        self.minConfidence = minConfidence
    }
}

/// How `/api/detections` reads the `detections` read model (written by
/// ``DetectionsProjection``).
///
/// A detection has one rendering, ``item`` (JSON built by PostgreSQL): the list, the single
/// item, an event's detections and the ingest responses all use it — ingest renders the
/// events it just wrote through ``render(eventData:)``, from the same columns the projection
/// stores (``columns``), so a detection reads the same before and after it is projected; or
/// byte for byte the same in Swift (``DetectionItem``), without the round trip.
public struct DetectionsReadModel: Sendable {
    let database: ReadDatabase

    public init(database: ReadDatabase) { self.database = database }

    static let list = ListSpec(
        table: "detections", timeColumn: "detected_at", idIsInteger: true, visible: "NOT t.hidden",
        totals: "detection_totals")

    /// A page of the list, newest first.
    public func list(_ filter: DetectionFilter, page: PageBounds) async throws -> ListPage {
        var sql = SQLBuilder()
        if let camera = filter.camera { sql.condition("t.camera_id = \(sql.bind(camera))") }
        if let objectType = filter.objectType { sql.condition("t.object_type = \(sql.bind(objectType))") }
        if let start = filter.start { sql.condition("t.detected_at >= \(sql.bind(start))") }
        if let end = filter.end { sql.condition("t.detected_at <= \(sql.bind(end))") }
        if let minConfidence = filter.minConfidence { sql.condition("t.confidence >= \(sql.bind(minConfidence))") }
        let onlyCamera =
            filter.objectType == nil && filter.start == nil && filter.end == nil && filter.minConfidence == nil
        let count = onlyCamera ? Self.list.totalsCount(camera: filter.camera, &sql) : nil
        return try await Self.list.page(item: Self.item, filters: sql, countSQL: count, bounds: page, in: database)
    }

    /// The detection (JSON) unless it doesn't exist or is hidden.
    public func item(_ id: Int64) async throws -> String? {
        try await database.json { sql in
            "SELECT \(Self.item) FROM detections t WHERE t.id = \(sql.bind(id)) AND NOT t.hidden"
        }
    }

    /// These detections, each with its event's payload, rendered like the read model renders its
    /// rows, in the same order: in Swift where that is exact (``DetectionItem``), by PostgreSQL
    /// (``render(eventData:)``) for the rest.
    public func render(_ detections: [(detection: DetectionRecorded, eventData: String)]) async throws -> [String] {
        var items = detections.map { DetectionItem.render($0.detection) }
        let rest = items.indices.filter { items[$0] == nil }
        if !rest.isEmpty {
            let rendered = try await render(eventData: rest.map { detections[$0].eventData })
            for (index, item) in zip(rest, rendered) { items[index] = item }
        }
        return items.compactMap { $0 }
    }

    /// The detections of these `DetectionRecorded` payloads (event data, JSON), rendered like
    /// the read model renders its rows, in the same order.
    public func render(eventData: [String]) async throws -> [String] {
        guard !eventData.isEmpty else { return [] }
        var sql = SQLBuilder()
        let statement = """
            SELECT \(Self.item) FROM (
                SELECT \(Self.columns), e.n FROM unnest(\(sql.bind(eventData))::jsonb[]) WITH ORDINALITY AS e(data, n)
            ) t
            ORDER BY t.n
            """
        var items: [String] = []
        for try await item in try await database.rows(sql, statement).decode(String.self) { items.append(item) }
        return items
    }

    // MARK: SQL

    /// The columns of a `detections` row from a `DetectionRecorded` payload `data` (jsonb), in
    /// the table's order: what the projection inserts and what ingest renders.
    static let columns = """
        (data->>'id')::bigint AS id, data->>'camera_id' AS camera_id, data->>'file_path' AS file_path,
        data->>'file_type' AS file_type, (data->>'detected_at')::timestamptz AS detected_at,
        data->>'object_type' AS object_type, (data->>'confidence')::double precision AS confidence,
        (data->>'bbox_x')::integer AS bbox_x, (data->>'bbox_y')::integer AS bbox_y,
        (data->>'bbox_width')::integer AS bbox_width, (data->>'bbox_height')::integer AS bbox_height,
        data->>'thumbnail_path' AS thumbnail_path, data->>'media_type' AS media_type,
        (data->>'duration')::double precision AS duration, data->>'video_codec' AS video_codec,
        (data->>'video_width')::integer AS video_width, (data->>'video_height')::integer AS video_height,
        data->'enrichment_data' AS enrichment_data
        """

    /// The item JSON (CONTRACT: detections) of the row `t`.
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
