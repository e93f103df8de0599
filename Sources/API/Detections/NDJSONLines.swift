import Hummingbird
import NIOCore

/// Splits a streamed body into lines (LF-terminated; the last line may lack one) without
/// holding more than one line: a line longer than `maxLength` bytes is not kept — its bytes are
/// skipped up to the next newline and it is reported as ``Line/tooLong`` — so memory stays
/// bounded whatever arrives.
enum NDJSONLines {
    enum Line {
        case line(ByteBuffer)
        case tooLong
    }

    /// Calls `handle` with every line of `body`, in order.
    static func forEach(
        in body: RequestBody, maxLength: Int, _ handle: (Line) async throws -> Void
    ) async throws {
        var partial = ByteBuffer()
        var skippingLongLine = false
        for try await var chunk in body {
            while let newline = chunk.readableBytesView.firstIndex(of: 0x0a) {
                let length = newline - chunk.readerIndex
                var line = chunk.readSlice(length: length)!
                chunk.moveReaderIndex(forwardBy: 1)
                if skippingLongLine {
                    skippingLongLine = false
                    try await handle(.tooLong)
                } else if partial.readableBytes + line.readableBytes > maxLength {
                    partial.clear()
                    try await handle(.tooLong)
                } else if partial.readableBytes > 0 {
                    partial.writeBuffer(&line)
                    try await handle(.line(partial))
                    partial.clear()
                } else {
                    try await handle(.line(line))
                }
            }
            if skippingLongLine { continue }
            if partial.readableBytes + chunk.readableBytes > maxLength {
                partial = ByteBuffer()
                skippingLongLine = true
            } else {
                partial.writeBuffer(&chunk)
            }
        }
        if skippingLongLine {
            try await handle(.tooLong)
        } else if partial.readableBytes > 0 {
            try await handle(.line(partial))
        }
    }
}
