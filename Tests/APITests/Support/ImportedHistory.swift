import Domain
import EventStore
import Foundation
import Projections

/// A history of domain events appended in one go as imported (the batch aggregator and the
/// analysis publisher leave imported events alone), for tests whose every number is known.
struct ImportedHistory {
    private(set) var items: [(stream: String, event: NewEvent)] = []
    private let metadata = EventMetadata(actor: "test", imported: true)

    mutating func add(_ event: some DomainEvent) throws {
        items.append((event.stream, try NewEvent(event, metadata: metadata)))
    }

    /// A camera registered on 2026-02-01, online.
    mutating func camera(_ id: String, name: String) throws {
        try add(
            CameraRegistered(
                id: id, name: name, folderPath: "/export/\(id)", status: .online,
                registeredAt: Self.date("2026-02-01T00:00:00Z")))
    }

    /// A detection with a fixed confidence and box.
    mutating func detection(_ id: Int64, camera: String, object: String, at time: String) throws {
        try add(
            DetectionRecorded(
                id: id, cameraId: camera, filePath: "/export/\(camera)/\(id).jpg", detectedAt: Self.date(time),
                objectType: object, confidence: 0.9, bboxX: 0, bboxY: 0, bboxWidth: 10, bboxHeight: 10))
    }

    func append(to store: EventStore) async throws { _ = try await store.appendBulk(items) }

    static func date(_ text: String) -> Date { EventCoding.parseTimestamp(text)! }
}
