import Domain
import EventStore
import Foundation
import Testing
import VigilTesting

@testable import Projections

/// A detection's item JSON has one rendering, PostgreSQL's (`DetectionsReadModel.item`); the
/// Swift one ingest answers with (`DetectionItem`) must be the same bytes, or decline.
@Suite struct DetectionItemTests {
    /// Detections with awkward values: control characters, quotes, backslashes, non-ASCII text,
    /// integral and long fractional numbers, times between milliseconds, absent optionals.
    static func detections(_ count: Int) -> [DetectionRecorded] {
        var random = Random(state: 42)
        let texts = [
            "front_door", "a\"b", "back\\slash", "tab\there", "line\nbreak", "cr\rlf", "bell\u{7}",
            "\u{1F}unit", "ünïcödé ☃ 🎥", "/media/cam/2026/11/29/a.jpg", "form\u{C}feed", "back\u{8}space", "",
        ]
        func text() -> String { texts[Int(random.next() % UInt64(texts.count))] + String(random.next() % 1000) }
        let numbers: [Double] = [0, 1, 0.5, 0.1, 0.65, 1.0 / 3, 0.30000000000000004, 0.0001, 0.00011, 0.99999999]
        return (0..<count).map { index in
            let pick = numbers[index % numbers.count]
            let confidence = index % 3 == 0 ? pick : random.unit()
            let isVideo = index % 2 == 1
            return DetectionRecorded(
                id: Int64(index) * 7_919 + 1, cameraId: text(), filePath: text(),
                fileType: isVideo ? "video/mp4" : "image/jpeg",
                detectedAt: Date(timeIntervalSince1970: 1_764_000_000 + Double(index) * 37.0123456789),
                objectType: text(), confidence: confidence, bboxX: index, bboxY: index * 3, bboxWidth: 1 + index,
                bboxHeight: 100_000 - index, thumbnailPath: index % 4 == 0 ? nil : text(),
                mediaType: isVideo ? "video" : "image",
                duration: isVideo ? (index % 5 == 0 ? 86_400 : random.unit() * 3600) : nil,
                videoCodec: isVideo ? text() : nil, videoWidth: isVideo ? 1920 : nil, videoHeight: isVideo ? 1080 : nil)
        }
    }

    @Test("Swift renders a detection byte for byte as PostgreSQL does, or leaves it to PostgreSQL")
    func swiftAndPostgreSQLAgree() async throws {
        try await TestDatabase.withStore { store in
            let model = DetectionsReadModel(database: ReadDatabase(client: store.client, logger: store.logger))
            let detections = Self.detections(400)
            let payloads = try detections.map { try NewEvent($0, metadata: EventMetadata(actor: "test")).data }
            let fromPostgreSQL = try await model.render(eventData: payloads)
            var rendered = 0
            for (index, detection) in detections.enumerated() {
                guard let swift = DetectionItem.render(detection) else { continue }
                rendered += 1
                #expect(swift == fromPostgreSQL[index], "detection \(index)")
            }
            // Only the confidences below 0.0001 (and none else here) are left to PostgreSQL.
            #expect(rendered >= 390, "\(rendered) of \(detections.count) rendered in Swift")
            // The public entry point gives PostgreSQL's answer for every one, whichever renders it.
            let mixed = try await model.render(Array(zip(detections, payloads)))
            #expect(mixed == fromPostgreSQL)

            var enriched = detections[0]
            enriched.enrichmentData = ["plate": .string("AB 123"), "score": .number(1.50)]
            #expect(DetectionItem.render(enriched) == nil)
        }
    }

    /// SplitMix64: the same values on every run.
    struct Random {
        var state: UInt64

        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
    }
}
