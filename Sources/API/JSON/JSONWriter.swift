import Domain
import Foundation
import Hummingbird

/// Writes JSON straight into a buffer. Used where a response embeds JSON that is already
/// serialised (event payloads from `jsonb`), so it is passed through instead of being
/// decoded and encoded again.
public struct JSONWriter {
    private(set) var buffer = ByteBuffer()

    public init() {}

    /// `2026-11-23T15:11:07.123456Z`: a time as PostgreSQL's `vigil_ts` renders it, for the
    /// few times written from Swift (when a log event was recorded). Exact: pasted back into a
    /// query (`as_of`), it names the same microsecond.
    public static func microseconds(_ date: Date) -> String {
        EventCoding.timestamp(date, .microseconds)
    }

    /// A whole document that is already JSON (rendered by PostgreSQL).
    public mutating func raw(json: String) { buffer.writeString(json) }

    public mutating func object(_ body: (inout ObjectWriter) -> Void) {
        JSONWriter.nested(in: &buffer, open: "{", close: "}", ObjectWriter.init, body)
    }

    /// Writes a nested object or array: hands the buffer to a writer of that kind and takes it
    /// back (moved, not copied).
    static func nested<Writer: NestedWriter>(
        in buffer: inout ByteBuffer,
        open: Unicode.Scalar,
        close: Unicode.Scalar,
        _ make: (ByteBuffer) -> Writer,
        _ body: (inout Writer) -> Void
    ) {
        var writer = make(buffer)
        buffer = ByteBuffer()
        writer.buffer.writeInteger(UInt8(ascii: open))
        body(&writer)
        writer.buffer.writeInteger(UInt8(ascii: close))
        buffer = writer.buffer
    }

    protocol NestedWriter {
        var buffer: ByteBuffer { get set }
    }

    public func response(status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: buffer))
    }

    public struct ObjectWriter: NestedWriter {
        var buffer: ByteBuffer
        private var isFirst = true

        init(buffer: ByteBuffer) { self.buffer = buffer }

        private mutating func key(_ name: String) {
            if !isFirst { buffer.writeInteger(UInt8(ascii: ",")) }
            isFirst = false
            JSONWriter.writeString(name, to: &buffer)
            buffer.writeInteger(UInt8(ascii: ":"))
        }

        public mutating func field(_ name: String, _ value: String?) {
            key(name)
            if let value { JSONWriter.writeString(value, to: &buffer) } else { buffer.writeStaticString("null") }
        }

        public mutating func field(_ name: String, _ value: Int64?) {
            key(name)
            buffer.writeString(value.map(String.init) ?? "null")
        }

        public mutating func field(_ name: String, _ value: Int) { field(name, Int64(value)) }

        public mutating func field(_ name: String, _ value: Double?) {
            key(name)
            buffer.writeString(value.map { $0.isFinite ? String($0) : "null" } ?? "null")
        }

        public mutating func field(_ name: String, _ value: Bool) {
            key(name)
            buffer.writeStaticString(value ? "true" : "false")
        }

        /// `json` must be valid JSON (it comes from PostgreSQL's `jsonb` output).
        public mutating func raw(_ name: String, json: String) {
            key(name)
            buffer.writeString(json)
        }

        public mutating func object(_ name: String, _ body: (inout ObjectWriter) -> Void) {
            key(name)
            JSONWriter.nested(in: &buffer, open: "{", close: "}", ObjectWriter.init, body)
        }

        public mutating func array(_ name: String, _ body: (inout ArrayWriter) -> Void) {
            key(name)
            JSONWriter.nested(in: &buffer, open: "[", close: "]", ArrayWriter.init, body)
        }
    }

    public struct ArrayWriter: NestedWriter {
        var buffer: ByteBuffer
        private var isFirst = true

        init(buffer: ByteBuffer) { self.buffer = buffer }

        private mutating func separator() {
            if !isFirst { buffer.writeInteger(UInt8(ascii: ",")) }
            isFirst = false
        }

        public mutating func string(_ value: String) {
            separator()
            JSONWriter.writeString(value, to: &buffer)
        }

        public mutating func object(_ body: (inout ObjectWriter) -> Void) {
            separator()
            JSONWriter.nested(in: &buffer, open: "{", close: "}", ObjectWriter.init, body)
        }

        /// `json` must be valid JSON (rendered by PostgreSQL).
        public mutating func raw(json: String) {
            separator()
            buffer.writeString(json)
        }
    }

    /// `value` as a JSON string literal.
    static func quoted(_ value: String) -> String {
        var buffer = ByteBuffer()
        writeString(value, to: &buffer)
        return String(buffer: buffer)
    }

    static func writeString(_ value: String, to buffer: inout ByteBuffer) {
        var value = value
        buffer.writeInteger(UInt8(ascii: "\""))
        value.withUTF8 { bytes in
            // Runs of bytes that need no escape go in whole.
            var start = 0
            for (index, byte) in bytes.enumerated() where byte < 0x20 || byte == 0x22 || byte == 0x5c {
                buffer.writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[start..<index])))
                start = index + 1
                switch byte {
                case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
                case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
                case UInt8(ascii: "\n"): buffer.writeStaticString("\\n")
                case UInt8(ascii: "\r"): buffer.writeStaticString("\\r")
                case UInt8(ascii: "\t"): buffer.writeStaticString("\\t")
                default:
                    let hex = String(byte, radix: 16)
                    buffer.writeString("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
                }
            }
            buffer.writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[start...])))
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }
}
