import Foundation

/// A payload object written by hand, byte for byte as ``EventCoding/encoder`` (Foundation's
/// sorted-keys `JSONEncoder`) writes it, for the payloads every single POST appends
/// (``DetectionRecorded`` and ``EventMetadata``): Foundation's encoder took 5.0 µs for a
/// detection in a release microbenchmark, this 0.87 µs (docs/BENCHMARKS.md, Ingest, session 43).
///
/// Byte for byte, not only the same JSON: the tests compare the two outputs directly. So the
/// caller writes the keys in the order Foundation sorts them, leaves out a `nil` as
/// `encodeIfPresent` does, and hands anything Foundation would write otherwise (a free-form
/// object, whose keys it sorts by its own rule; a number that is not finite, which it refuses)
/// back to the encoder instead.
struct PayloadJSON {
    private var bytes: [UInt8] = []
    private var hasFields = false

    init() {
        bytes.reserveCapacity(512)
        bytes.append(UInt8(ascii: "{"))
    }

    /// The object's text.
    mutating func finish() -> String {
        bytes.append(UInt8(ascii: "}"))
        return String(decoding: bytes, as: UTF8.self)
    }

    private mutating func key(_ name: StaticString) {
        if hasFields { bytes.append(UInt8(ascii: ",")) }
        hasFields = true
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    mutating func field(_ name: StaticString, _ value: String?) {
        guard let value else { return }
        key(name)
        string(value)
    }

    mutating func field(_ name: StaticString, _ value: Date) {
        key(name)
        string(EventCoding.timestamp(value))
    }

    mutating func field(_ name: StaticString, _ value: Int64) {
        key(name)
        bytes.append(contentsOf: value.description.utf8)
    }

    mutating func field(_ name: StaticString, _ value: Int?) {
        guard let value else { return }
        field(name, Int64(value))
    }

    mutating func field(_ name: StaticString, _ value: Bool?) {
        guard let value else { return }
        key(name)
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    /// A finite number (the caller checked: Foundation refuses the others), as Foundation
    /// writes it: its shortest round-tripping text, without a trailing `.0`.
    mutating func field(_ name: StaticString, _ value: Double?) {
        guard let value else { return }
        precondition(value.isFinite, "PayloadJSON takes finite numbers only")
        key(name)
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        bytes.append(contentsOf: text.utf8)
    }

    /// A string as Foundation escapes it: `"`, `\` and `/` with a backslash, the control
    /// characters as `\b \f \n \r \t` or `\u00xx`; everything else (non-ASCII too) as it is.
    private mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { text in
            var start = 0
            for (index, byte) in text.enumerated() where byte < 0x20 || byte == 0x22 || byte == 0x5C || byte == 0x2F {
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: text[start..<index]))
                start = index + 1
                bytes.append(UInt8(ascii: "\\"))
                switch byte {
                case 0x22, 0x5C, 0x2F: bytes.append(byte)
                case 0x08: bytes.append(UInt8(ascii: "b"))
                case 0x0C: bytes.append(UInt8(ascii: "f"))
                case 0x0A: bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(UInt8(ascii: "t"))
                default:
                    bytes.append(contentsOf: "u00".utf8)
                    for digit in [byte >> 4, byte & 0x0F] {
                        bytes.append(digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10)
                    }
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: text[start...]))
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
