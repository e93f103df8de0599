import Foundation

/// A detector saw an object in a camera's frame (the seeds' detection record).
///
/// Encoded with snake_case keys, it is the `data` of a `DetectionRecorded` event in the
/// stream `camera-<camera_id>`.
public struct DetectionRecorded: Codable, Sendable, Hashable {
    public static let type = "DetectionRecorded"

    public var cameraId: String
    public var filePath: String
    public var fileType: String
    public var detectedAt: Date
    public var objectType: String
    public var confidence: Double
    public var bboxX: Int
    public var bboxY: Int
    public var bboxWidth: Int
    public var bboxHeight: Int
    public var mediaType: String

    public init(
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
        mediaType: String = "image"
    ) {
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
        self.mediaType = mediaType
    }

    /// The stream a camera's detections are appended to.
    public var stream: String { "camera-\(cameraId)" }
}
