import Domain
import Foundation
import Testing

@Suite("Domain events")
struct DetectionRecordedTests {
    @Test("DetectionRecorded encodes with the seed's snake_case field names and round-trips")
    func encoding() throws {
        let detection = DetectionRecorded(
            cameraId: "front_door",
            filePath: "/export/foscam/front_door/2026-11-23_12-00-00.jpg",
            detectedAt: Date(timeIntervalSince1970: 1_795_000_000),
            objectType: "person",
            confidence: 0.93,
            bboxX: 120,
            bboxY: 80,
            bboxWidth: 64,
            bboxHeight: 128
        )
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        let data = try encoder.encode(detection)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(
            Set(object.keys) == [
                "camera_id", "file_path", "file_type", "detected_at", "object_type", "confidence",
                "bbox_x", "bbox_y", "bbox_width", "bbox_height", "media_type",
            ]
        )
        #expect(object["detected_at"] as? String == "2026-11-18T11:06:40Z")
        #expect(detection.stream == "camera-front_door")

        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .iso8601
        #expect(try decoder.decode(DetectionRecorded.self, from: data) == detection)
    }
}
