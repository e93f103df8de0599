import Foundation

/// A detector saw an object in a camera's frame (the seeds' detection record). Stream
/// `detections-<camera_id>`; `id` is the detection's public integer id, assigned by the writer.
public struct DetectionRecorded: DomainEvent {
    public static let type = "DetectionRecorded"

    public var id: Int64
    public var cameraId: String
    public var filePath: String
    public var fileType: String
    public var detectedAt: Date
    public var objectType: String
    /// 0…1.
    public var confidence: Double
    public var bboxX: Int
    public var bboxY: Int
    public var bboxWidth: Int
    public var bboxHeight: Int
    public var thumbnailPath: String?
    /// `image` or `video`.
    public var mediaType: String
    public var duration: Double?
    public var videoCodec: String?
    public var videoWidth: Int?
    public var videoHeight: Int?
    public var enrichmentData: [String: JSONValue]?

    public init(
        id: Int64,
        cameraId: String,
        filePath: String,
        fileType: String = "image/jpeg",
        detectedAt: Date,
        objectType: String,
        confidence: Double,
        bboxX: Int,
        bboxY: Int,
        bboxWidth: Int,
        bboxHeight: Int,
        thumbnailPath: String? = nil,
        mediaType: String = "image",
        duration: Double? = nil,
        videoCodec: String? = nil,
        videoWidth: Int? = nil,
        videoHeight: Int? = nil,
        enrichmentData: [String: JSONValue]? = nil
    ) {
        self.id = id
        self.cameraId = cameraId
        self.filePath = filePath
        self.fileType = fileType
        self.detectedAt = detectedAt
        self.objectType = objectType
        self.confidence = confidence
        self.bboxX = bboxX
        self.bboxY = bboxY
        self.bboxWidth = bboxWidth
        self.bboxHeight = bboxHeight
        self.thumbnailPath = thumbnailPath
        self.mediaType = mediaType
        self.duration = duration
        self.videoCodec = videoCodec
        self.videoWidth = videoWidth
        self.videoHeight = videoHeight
        self.enrichmentData = enrichmentData
    }

    public var stream: String { Self.stream(cameraId: cameraId) }
    public static func stream(cameraId: String) -> String { "detections-\(cameraId)" }

    /// Written by hand (``PayloadJSON``), keys in the order Foundation sorts them; with
    /// `enrichment_data` or a number that is not finite, by ``EventCoding/encoder`` itself.
    public func encodedData() throws -> String {
        guard enrichmentData == nil, confidence.isFinite, duration?.isFinite ?? true else {
            return try EventCoding.encodedByFoundation(self)
        }
        var json = PayloadJSON()
        json.field("bbox_height", bboxHeight)
        json.field("bbox_width", bboxWidth)
        json.field("bbox_x", bboxX)
        json.field("bbox_y", bboxY)
        json.field("camera_id", cameraId)
        json.field("confidence", confidence)
        json.field("detected_at", detectedAt)
        json.field("duration", duration)
        json.field("file_path", filePath)
        json.field("file_type", fileType)
        json.field("id", id)
        json.field("media_type", mediaType)
        json.field("object_type", objectType)
        json.field("thumbnail_path", thumbnailPath)
        json.field("video_codec", videoCodec)
        json.field("video_height", videoHeight)
        json.field("video_width", videoWidth)
        return json.finish()
    }

    enum CodingKeys: String, CodingKey {
        case id, confidence, duration
        case cameraId = "camera_id"
        case filePath = "file_path"
        case fileType = "file_type"
        case detectedAt = "detected_at"
        case objectType = "object_type"
        case bboxX = "bbox_x"
        case bboxY = "bbox_y"
        case bboxWidth = "bbox_width"
        case bboxHeight = "bbox_height"
        case thumbnailPath = "thumbnail_path"
        case mediaType = "media_type"
        case videoCodec = "video_codec"
        case videoWidth = "video_width"
        case videoHeight = "video_height"
        case enrichmentData = "enrichment_data"
    }
}
