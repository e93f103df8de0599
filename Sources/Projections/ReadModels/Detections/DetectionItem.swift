import Domain
import Foundation

/// A detection's item JSON made in Swift, byte for byte what PostgreSQL makes of the same
/// event with ``DetectionsReadModel/item`` over ``DetectionsReadModel/columns``
/// (`json_build_object`'s spacing, `vigil_ts` times, float8 output, `escape_json` strings), so
/// that an ingest answer needs no round trip. `DetectionItemTests` holds the two renderings
/// to each other over generated detections; whatever it can't promise (`enrichment_data`, which
/// PostgreSQL writes as jsonb normalises it) is left to PostgreSQL.
enum DetectionItem {
    /// The item JSON, or nil when only PostgreSQL can render it exactly.
    static func render(_ detection: DetectionRecorded) -> String? {
        guard detection.enrichmentData == nil,
            let confidence = float8(detection.confidence),
            let duration = optional(detection.duration, float8)
        else { return nil }
        var json = "{"
        json.reserveCapacity(512)
        func field(_ name: String, _ value: String, first: Bool = false) {
            if !first { json += ", " }
            json += "\""
            json += name
            json += "\" : "
            json += value
        }
        field("id", String(detection.id), first: true)
        field("camera_id", string(detection.cameraId))
        field("file_path", string(detection.filePath))
        field("file_type", string(detection.fileType))
        field("detected_at", string(timestamp(detection.detectedAt)))
        field("object_type", string(detection.objectType))
        field("confidence", confidence)
        field("bbox_x", String(detection.bboxX))
        field("bbox_y", String(detection.bboxY))
        field("bbox_width", String(detection.bboxWidth))
        field("bbox_height", String(detection.bboxHeight))
        field("thumbnail_path", optional(detection.thumbnailPath, string) ?? "null")
        field("media_type", string(detection.mediaType))
        field("duration", duration)
        field("video_codec", optional(detection.videoCodec, string) ?? "null")
        field("video_width", detection.videoWidth.map(String.init) ?? "null")
        field("video_height", detection.videoHeight.map(String.init) ?? "null")
        field("enrichment_data", "null")
        return json + "}"
    }

    /// `null` for nil, else `render`'s text (nil when it can't render the value).
    private static func optional<Value>(_ value: Value?, _ render: (Value) -> String?) -> String? {
        guard let value else { return "null" }
        return render(value)
    }

    /// What `vigil_ts` writes for the time the payload holds (whole milliseconds, as
    /// ``EventCoding`` writes payload times): the same digits, to the microsecond.
    private static func timestamp(_ date: Date) -> String {
        EventCoding.timestamp(date).dropLast() + "000Z"
    }

    /// float8's output: the shortest digits that read back as the same value, as Swift's
    /// own, but an integral value without `.0`. Nil beyond the range where both write plain
    /// digits the same way (a detection's numbers are well inside it).
    private static func float8(_ value: Double) -> String? {
        guard value.isFinite, value.magnitude < 1e15, value.magnitude >= 1e-4 || value == 0 else { return nil }
        if value == 0 { return value.sign == .minus ? "-0" : "0" }
        if value == value.rounded(.towardZero) { return String(Int64(value)) }
        return String(value)
    }

    /// A JSON string as PostgreSQL's `escape_json` writes it.
    private static func string(_ value: String) -> String {
        // Most values need no escape: their bytes as they are.
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            return "\"" + value + "\""
        }
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{8}": out += "\\b"
            case "\u{C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
