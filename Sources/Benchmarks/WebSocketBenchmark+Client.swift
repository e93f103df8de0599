import Foundation
import HummingbirdWSClient
import Logging
import NIOWebSocket
import Synchronization

/// The clients of `vigil bench ws`: each follows a socket, times every message from its post's
/// send time, and checks that checkpoints only grow.
extension WebSocketBenchmark {
    /// What the clients of a phase measured.
    final class Tallies: Sendable {
        let state = Mutex<
            (perClient: [[(sequence: Int, latency: Int64)]], fromCommit: [Int64], delivered: Int, outOfOrder: Int)
        >(([], [], 0, 0))
    }

    /// One client: follows `url` until it has `total` event messages (or the socket ends),
    /// timing each from its post's send time and checking that checkpoints only grow.
    static func follow(
        _ url: String, total: Int, base: Int64, sent: SendTimes, clock: ContinuousClock,
        subscription: AsyncStream<Void>.Continuation, tallies: Tallies, logger: Logger
    ) async throws {
        _ = try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 20), logger: logger) {
            inbound, outbound, _ in
            var latencies: [(sequence: Int, latency: Int64)] = []
            latencies.reserveCapacity(total)
            var fromCommit: [Int64] = []
            var last = ""
            var outOfOrder = 0
            defer {
                tallies.state.withLock {
                    $0.perClient.append(latencies)
                    $0.fromCommit += fromCommit
                    $0.delivered += latencies.count
                    $0.outOfOrder += outOfOrder
                }
            }
            for try await message in inbound.messages(maxSize: 1 << 20) {
                guard case .text(let text) = message else { continue }
                let now = clock.now
                if text.hasPrefix(#"{"type":"subscribed""#) {
                    subscription.yield()
                    continue
                }
                guard text.hasPrefix(#"{"type":"event""#), let checkpoint = Self.checkpoint(in: text) else { continue }
                if checkpoint <= last { outOfOrder += 1 }
                last = checkpoint
                guard let sequence = Self.sequence(in: text, base: base), let sentAt = sent.time(of: sequence) else {
                    continue
                }
                latencies.append((sequence, Int64((now - sentAt) / .nanoseconds(1))))
                if let recorded = Self.secondOfDay(after: #""recorded_at":""#, in: text) {
                    var since = Self.secondOfDay(Date()) - recorded
                    if since < -43_200 { since += 86_400 }  // across midnight
                    fromCommit.append(Int64(since * 1e9))
                }
                if latencies.count == total { break }
            }
            try await outbound.close(.normalClosure, reason: nil)
        }
    }

    /// Seconds since midnight (UTC) of the `…THH:MM:SS.ffffffZ` time after `key` in `text`:
    /// parsed by hand, as fast as the bare fan-out's clients need nothing parsed.
    static func secondOfDay(after key: String, in text: String) -> Double? {
        guard let start = text.range(of: key)?.upperBound else { return nil }
        let digits = Array(text[start...].utf8.prefix(27))
        guard digits.count == 27, digits[10] == UInt8(ascii: "T") else { return nil }
        func number(_ range: Range<Int>) -> Double {
            digits[range].reduce(0) { $0 * 10 + Double($1 &- UInt8(ascii: "0")) }
        }
        return number(11..<13) * 3600 + number(14..<16) * 60 + number(17..<19) + number(20..<26) / 1e6
    }

    static func secondOfDay(_ date: Date) -> Double {
        date.timeIntervalSince1970.truncatingRemainder(dividingBy: 86_400)
    }

    /// The post a message is of: the number its file path ends in (`…/N.jpg`), less `base`.
    static func sequence(in text: String, base: Int64) -> Int? {
        guard let end = text.range(of: #".jpg""#)?.lowerBound,
            let slash = text[..<end].lastIndex(of: "/"),
            let number = Int64(text[text.index(after: slash)..<end])
        else { return nil }
        return Int(number - base)
    }

    static func checkpoint(in text: String) -> String? {
        guard let start = text.range(of: #""checkpoint":""#)?.upperBound,
            let end = text[start...].firstIndex(of: "\"")
        else { return nil }
        return String(text[start..<end])
    }

    /// When each post was sent, for the clients to time their messages by.
    final class SendTimes: Sendable {
        private let times: Mutex<[ContinuousClock.Instant?]>
        init(capacity: Int) { times = Mutex(Array(repeating: nil, count: capacity)) }
        func record(_ index: Int, _ time: ContinuousClock.Instant) { times.withLock { $0[index] = time } }
        func time(of index: Int) -> ContinuousClock.Instant? {
            times.withLock { index < $0.count ? $0[index] : nil }
        }
    }
}
