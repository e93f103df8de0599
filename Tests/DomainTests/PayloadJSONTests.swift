import Domain
import Foundation
import Testing

/// The payloads written by hand (a detection's data, every event's metadata) are the bytes
/// Foundation's encoder writes for them.
@Suite struct PayloadJSONTests {
    /// Strings with everything an escape is about: quotes, backslashes, slashes, every control
    /// character, DEL, non-ASCII and astral characters, separators JavaScript minds.
    static func text(_ generator: inout some RandomNumberGenerator) -> String {
        let pieces =
            [
                "a", "Z", "0", " ", "\"", "\\", "/", "//", "\u{7F}", "é", "ß", "日本", "😀", "\u{2028}", "\u{2029}",
                "\u{FEFF}", "cam-1", "/media/cam/2026/x.jpg", "{\"k\":[1]}",
            ] + (0..<0x20).map { String(UnicodeScalar(UInt8($0))) }
        let count = Int.random(in: 0...12, using: &generator)
        return (0..<count).map { _ in pieces.randomElement(using: &generator)! }.joined()
    }

    static func number(_ generator: inout some RandomNumberGenerator) -> Double {
        switch Int.random(in: 0..<6, using: &generator) {
        case 0: Double(Int.random(in: -1000...1000, using: &generator))
        case 1:
            [0.0, -0.0, 1.0, 0.1 + 0.2, 1e-7, 1e21, 1e16, 123_456_789_012.5, 5e-324, .greatestFiniteMagnitude]
                .randomElement(using: &generator)!
        case 2: Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &generator)).finite(or: 0.5)
        default: Double.random(in: 0...1, using: &generator)
        }
    }

    static func detection(_ generator: inout some RandomNumberGenerator) -> DetectionRecorded {
        func maybe<T>(_ value: @autoclosure () -> T) -> T? { Bool.random(using: &generator) ? value() : nil }
        let seconds = Double.random(in: -12_219_292_800...253_402_300_799, using: &generator)
        return DetectionRecorded(
            id: Int64.random(in: Int64.min...Int64.max, using: &generator), cameraId: text(&generator),
            filePath: text(&generator), fileType: text(&generator),
            detectedAt: Date(
                timeIntervalSince1970: seconds.rounded(.down) + Double(Int.random(in: 0..<1000, using: &generator))
                    / 1000),
            objectType: text(&generator), confidence: number(&generator),
            bboxX: Int.random(in: Int.min...Int.max, using: &generator),
            bboxY: Int.random(in: -5...5000, using: &generator),
            bboxWidth: Int.random(in: 0...5000, using: &generator),
            bboxHeight: Int.random(in: 0...5000, using: &generator),
            thumbnailPath: maybe(text(&generator)), mediaType: text(&generator), duration: maybe(number(&generator)),
            videoCodec: maybe(text(&generator)), videoWidth: maybe(Int.random(in: 0...8000, using: &generator)),
            videoHeight: maybe(Int.random(in: 0...8000, using: &generator)))
    }

    @Test("a detection's data written by hand is Foundation's encoding, byte for byte")
    func detectionsAreFoundationsBytes() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            let detection = Self.detection(&generator)
            #expect(try detection.encodedData() == EventCoding.encodedByFoundation(detection))
        }
        // What goes to Foundation: a free-form object (its keys in Foundation's own order),
        // a number that is not finite (refused, as Foundation refuses it).
        var enriched = Self.detection(&generator)
        enriched.enrichmentData = [
            "b10": .number(1), "b9": .string("x/y"), "A": .object(["z": .null, "a": .bool(true)]),
        ]
        #expect(try enriched.encodedData() == EventCoding.encodedByFoundation(enriched))
        var infinite = Self.detection(&generator)
        infinite.confidence = .infinity
        #expect(throws: EncodingError.self) { try infinite.encodedData() }
        infinite.confidence = 0.5
        infinite.duration = .nan
        #expect(throws: EncodingError.self) { try infinite.encodedData() }
        // And it reads back as the same detection.
        let detection = Self.detection(&generator)
        let decoded = try DetectionRecorded.decode(try detection.encodedData())
        #expect(try decoded.encodedData() == detection.encodedData())
    }

    @Test("metadata written by hand is Foundation's encoding, byte for byte")
    func metadataIsFoundationsBytes() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            func maybe(_ text: String) -> String? { Bool.random(using: &generator) ? text : nil }
            let metadata = EventMetadata(
                actor: Self.text(&generator), requestId: maybe(Self.text(&generator)),
                clientAddress: maybe(Self.text(&generator)), userAgent: maybe(Self.text(&generator)),
                correlationId: maybe(Self.text(&generator)), causationId: maybe(Self.text(&generator)),
                imported: [nil, true, false].randomElement(using: &generator)!,
                requestDigest: maybe(Self.text(&generator)))
            #expect(try metadata.encoded() == EventCoding.encodedByFoundation(metadata))
        }
        #expect(try EventMetadata(actor: "system").encoded() == #"{"actor":"system"}"#)
    }
}

extension Double {
    /// This number, or `fallback` when it is not finite.
    fileprivate func finite(or fallback: Double) -> Double { isFinite ? self : fallback }
}
