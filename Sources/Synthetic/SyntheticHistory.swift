import Domain
import Foundation

/// A plausible, deterministic history of cameras, detections and analyzed security events, for
/// demo data, tests and benchmarks. Pure: it makes events, the caller appends them.
public struct SyntheticHistory: Sendable {
    public static let objectTypes = ["person", "car", "dog", "cat", "bicycle", "package", "truck"]
    public static let cameraNames = ["Front Door", "Back Yard", "Garage", "Driveway", "Side Gate", "Porch"]

    public var cameras: [CameraRegistered]
    /// When the first security event starts; each next one starts `spacing` later.
    public var start: Date
    public var spacing: TimeInterval

    public init(cameraCount: Int = 4, start: Date, spacing: TimeInterval = 60) {
        cameras = (0..<cameraCount).map { index in
            let base = Self.cameraNames[index % Self.cameraNames.count]
            let name = index < Self.cameraNames.count ? base : "\(base) \(index / Self.cameraNames.count + 1)"
            let id = Camera.normalizedID(name)
            return CameraRegistered(
                id: id, name: name, folderPath: "/export/foscam/\(id)", status: .online, registeredAt: start)
        }
        self.start = start
        self.spacing = spacing
    }

    /// A small deterministic hash of `n`, for choices that look random.
    static func mix(_ n: Int, _ salt: UInt64) -> UInt64 {
        var x = UInt64(truncatingIfNeeded: n) &+ salt &* 0x9E37_79B9_7F4A_7C15
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return x ^ (x >> 31)
    }

    /// The events of security event number `n` (0-based), in the order a pipeline writes them:
    /// its detections, opened, closed, analyzed. `id` is its public id, its detections take the
    /// ids `firstDetectionID…` (`detectionsPerEvent` of them).
    public func securityEvent(
        _ n: Int, id: Int64, firstDetectionID: Int64, detectionsPerEvent: Int = 1
    ) -> [any DomainEvent] {
        let camera = cameras[Int(Self.mix(n, 1) % UInt64(cameras.count))].id
        let startedAt = start.addingTimeInterval(Double(n) * spacing)
        var detections: [DetectionRecorded] = []
        for index in 0..<detectionsPerEvent {
            let objectType = Self.objectTypes[Int(Self.mix(n * 31 + index, 2) % UInt64(Self.objectTypes.count))]
            let detectionID = firstDetectionID + Int64(index)
            detections.append(
                DetectionRecorded(
                    id: detectionID, cameraId: camera,
                    filePath: "/export/foscam/\(camera)/snap_\(detectionID).jpg",
                    detectedAt: startedAt.addingTimeInterval(Double(index) * 2),
                    objectType: objectType,
                    confidence: 0.5 + Double(Self.mix(n * 31 + index, 3) % 50) / 100,
                    bboxX: Int(Self.mix(n, 4) % 1600), bboxY: Int(Self.mix(n, 5) % 900),
                    bboxWidth: 64 + Int(Self.mix(n, 6) % 200), bboxHeight: 128 + Int(Self.mix(n, 7) % 300),
                    thumbnailPath: "/data/thumbnails/\(detectionID).jpg"))
        }
        let ids = detections.map(\.id)
        var types: [String] = []
        for detection in detections where !types.contains(detection.objectType) { types.append(detection.objectType) }
        let score = Int(Self.mix(n, 8) % 101)
        let verb = score > 84 ? "Unknown person lingering" : score > 59 ? "Unexpected activity" : "Routine activity"
        let endedAt = startedAt.addingTimeInterval(Double(max(1, detectionsPerEvent)) * 2 + 28)
        return detections + [
            SecurityEventOpened(
                id: id, cameraId: camera, batchId: "batch-\(id)", startedAt: startedAt, detectionIds: ids,
                objectTypes: types),
            SecurityEventClosed(id: id, endedAt: endedAt, detectionIds: ids, objectTypes: types),
            SecurityEventAnalyzed(
                id: id, riskScore: score,
                summary:
                    "\(verb): \(types.joined(separator: ", ")) at \(camera.replacingOccurrences(of: "_", with: " "))",
                reasoning: "Detected \(types.joined(separator: " and ")) with score \(score) during the batch window.",
                model: "synthetic", latencyMs: 800 + Int(Self.mix(n, 9) % 1200)),
        ]
    }
}
