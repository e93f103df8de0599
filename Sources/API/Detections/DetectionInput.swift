import Domain
import Foundation

/// A detection as a client sends it, validated.
struct DetectionInput: Sendable {
    var cameraId: String
    var filePath: String
    var fileType: String
    var detectedAt: Date
    var objectType: String
    var confidence: Double
    var bbox: (x: Int, y: Int, width: Int, height: Int)
    var thumbnailPath: String?
    var mediaType: String
    var duration: Double?
    var videoCodec: String?
    var videoWidth: Int?
    var videoHeight: Int?
    var enrichmentData: [String: JSONValue]?

    enum MediaType: String, CaseIterable { case image, video }

    /// Reads every field, recording every problem in `body`; nil if any required field failed.
    init?(_ body: inout JSONBody, eventTimes: EventTimeWindow) {
        let cameraId = body.string("camera_id", required: true, length: 1...Camera.maxIDLength)
        let filePath = body.string("file_path", required: true, length: 1...1000)
        let fileType = body.string("file_type", length: 1...100)
        let detectedAt = body.eventTime("detected_at", window: eventTimes)
        let objectType = body.string("object_type", required: true, length: 1...50)
        let confidence = body.number("confidence", required: true, in: 0...1)
        let x = body.integer("bbox_x", required: true, in: 0...100_000)
        let y = body.integer("bbox_y", required: true, in: 0...100_000)
        let width = body.integer("bbox_width", required: true, in: 1...100_000)
        let height = body.integer("bbox_height", required: true, in: 1...100_000)
        let thumbnailPath = body.string("thumbnail_path", length: 1...1000)
        let mediaType = body.choice("media_type", MediaType.self)
        let duration = body.number("duration", in: 0...86_400)
        let videoCodec = body.string("video_codec", length: 1...50)
        let videoWidth = body.integer("video_width", in: 1...100_000)
        let videoHeight = body.integer("video_height", in: 1...100_000)
        let enrichment = body.object("enrichment_data")
        guard let cameraId, let filePath, let objectType, let confidence, let x, let y, let width, let height,
            body.issues.isEmpty
        else { return nil }
        self.cameraId = cameraId
        self.filePath = filePath
        self.fileType = fileType ?? (mediaType == .video ? "video/mp4" : "image/jpeg")
        self.detectedAt = detectedAt ?? Date()
        self.objectType = objectType
        self.confidence = confidence
        self.bbox = (x, y, width, height)
        self.thumbnailPath = thumbnailPath
        self.mediaType = (mediaType ?? .image).rawValue
        self.duration = duration
        self.videoCodec = videoCodec
        self.videoWidth = videoWidth
        self.videoHeight = videoHeight
        self.enrichmentData = enrichment
    }

    func detection(id: Int64) -> DetectionRecorded {
        DetectionRecorded(
            id: id, cameraId: cameraId, filePath: filePath, fileType: fileType, detectedAt: detectedAt,
            objectType: objectType, confidence: confidence, bboxX: bbox.x, bboxY: bbox.y, bboxWidth: bbox.width,
            bboxHeight: bbox.height, thumbnailPath: thumbnailPath, mediaType: mediaType, duration: duration,
            videoCodec: videoCodec, videoWidth: videoWidth, videoHeight: videoHeight, enrichmentData: enrichmentData)
    }
}
