import Foundation
import NIOCore
import NIOPosix

/// The smallest WebSocket client that can tell how a server closes a socket it refuses: it sends
/// the upgrade request over a plain TCP connection and reads until the close frame after the
/// `101` response is in. (HummingbirdWSClient sometimes loses a
/// frame that arrives together with the `101`: a close sent at once never reaches its handler,
/// while Python's `websockets` gets it 40 times in 40 on the same loaded machine.)
enum RawWebSocket {
    struct Answer {
        /// The status line of the handshake's answer (`HTTP/1.1 101 Switching Protocols`).
        var status: String
        /// The close frame's code and reason, if the server sent one.
        var close: (code: UInt16, reason: String)?
        /// Complete frames read after the `101`.
        var frames = 0
    }

    /// Opens `path` on 127.0.0.1:`port` and reads until a close frame is in or the server
    /// closes. (Non-blocking: a blocking read would hold one of the few threads the server
    /// under test runs on too — the first version of this did, and stalled the whole process.)
    ///
    /// `firstFrame`: return after the first frame of any kind (a socket that was let in sends
    /// its first message and stays open).
    static func refusal(
        port: Int, path: String, headers: [String: String] = [:], firstFrame: Bool = false
    ) async throws -> Answer {
        var request =
            "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        let channel = try await rawConnection(port: port)
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: request))
            var bytes: [UInt8] = []
            for try await chunk in inbound {
                bytes += chunk.readableBytesView
                if let answer = parse(bytes), answer.close != nil || (firstFrame && answer.frames > 0) {
                    return answer
                }
            }
            return parse(bytes) ?? Answer(status: "", close: nil)
        }
    }

    static func parse(_ bytes: [UInt8]) -> Answer? {
        let end: [UInt8] = Array("\r\n\r\n".utf8)
        guard
            let head = (0...max(0, bytes.count - 4)).first(where: { Array(bytes[$0..<min($0 + 4, bytes.count)]) == end }
            )
        else { return nil }
        let status = String(decoding: bytes[0..<head], as: UTF8.self).components(separatedBy: "\r\n").first ?? ""
        var index = head + 4
        var frames = 0
        while index + 2 <= bytes.count {
            let opcode = bytes[index] & 0x0F
            var length = Int(bytes[index + 1] & 0x7F)
            var start = index + 2
            if length == 126 {
                guard start + 2 <= bytes.count else { break }
                length = Int(bytes[start]) << 8 | Int(bytes[start + 1])
                start += 2
            }
            guard start + length <= bytes.count else { break }
            if opcode == 0x8, length >= 2 {
                let code = UInt16(bytes[start]) << 8 | UInt16(bytes[start + 1])
                let reason = String(decoding: bytes[(start + 2)..<(start + length)], as: UTF8.self)
                return Answer(status: status, close: (code, reason), frames: frames + 1)
            }
            frames += 1
            index = start + length
        }
        return Answer(status: status, close: nil, frames: frames)
    }
}

/// A plain TCP connection to 127.0.0.1:`port`, bytes in and out (non-blocking: a blocking
/// socket would hold one of the few threads the server under test runs on too).
func rawConnection(port: Int) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
    try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
}
