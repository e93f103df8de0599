import Domain
import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import NIOWebSocket
import Synchronization

/// `/ws/events?channels=events,detections`: the seeds' live feed (``EventsFeed``), per channel.
///
/// - Subscribed to `events` unless `channels` says otherwise; `{"type": "subscribe" |
///   "unsubscribe", "channels": […]}` changes that, answered with `{"type": "subscribed",
///   "channels": […all now subscribed…]}`.
/// - `ping` (text, or `{"type": "ping"}`) → `{"type": "pong"}`. The server pings every 30 s;
///   a client silent for `VIGIL_WS_IDLE_SECONDS` (300) is closed with 1000.
/// - Errors, the socket staying open: `{"type": "error", "error": "invalid_json" |
///   "invalid_message_format" | "unknown_message_type" | "validation_error", "message",
///   "details"}` (an unknown channel is a `validation_error` and changes nothing).
/// - Auth as on `/ws/log` (the `read` permission); a refusal is a close with 1008 and why.
///
/// `/ws/system` is the same socket fixed to the `system` channel: `system_status` every 5 s
/// (``SystemStatusFeed``), `ping` answered, no subscriptions.
struct EventsSocket {
    static let eventsPath = "/ws/events"
    static let systemPath = "/ws/system"

    let path: String
    let feed: EventsFeed
    let status: SystemStatusFeed
    let access: SocketAccess
    let idleTimeout: Duration
    /// The channels of every socket of this route, whatever it asks (`/ws/system`); nil: as
    /// asked (`/ws/events`).
    var fixedChannels: Set<EventsChannel>? = nil

    func addRoutes(to router: Router<VigilRequestContext>) {
        router.ws(RouterPath(stringLiteral: path), shouldUpgrade: shouldUpgrade, onUpgrade: handle)
    }

    @Sendable func shouldUpgrade(_ request: Request, context: VigilRequestContext) async throws -> RouterShouldUpgrade {
        var headers = HTTPFields()
        if let chosen = LogSocket.subprotocol(request) { headers[.secWebSocketProtocol] = chosen }
        return .upgrade(headers)
    }

    /// The channels asked for in the query (`events` when none), or why not.
    static func channels(_ request: Request) -> Result<Set<EventsChannel>, APIError> {
        guard let names = QueryParameters(request).list("channels") else { return .success([.events]) }
        var channels = Set<EventsChannel>()
        for name in names {
            guard let channel = EventsChannel(rawValue: name) else {
                let known = EventsChannel.allCases.map(\.rawValue).joined(separator: ", ")
                return .failure(APIError.badRequest("Unknown channel '\(name)': one of \(known)"))
            }
            channels.insert(channel)
        }
        return .success(channels)
    }

    @Sendable func handle(
        _ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter,
        _ context: WebSocketRouterContext<VigilRequestContext>
    ) async throws {
        if let refusal = await access.refusal(context, path: path) {
            try await LogSocket.close(outbound, .policyViolation, refusal)
            return
        }
        access.sockets?.opened(path)
        defer { access.sockets?.closed(path) }
        let channels: Set<EventsChannel>
        switch fixedChannels.map({ .success($0) }) ?? Self.channels(context.request) {
        case .success(let valid): channels = valid
        case .failure(let refusal):
            try await LogSocket.close(outbound, .policyViolation, refusal.detail)
            return
        }
        guard let subscriber = feed.subscribe(channels) else { return }
        defer { feed.unsubscribe(subscriber) }
        // The status at once, not 5 s later.
        if channels.contains(.system) { _ = subscriber.offer(await status.current(), on: .system) }
        let subscribable = fixedChannels == nil
        let lastHeard = LastHeard()
        let keyWatch = access.keyWatch(context.request, path: path)
        try await withThrowingTaskGroup(of: Void.self) { group in
            keyWatch?.watch(&group, closing: outbound)
            group.addTask {
                for await message in subscriber.stream { try await LogSocket.send(message, outbound) }
                if subscriber.overflowed {
                    try await LogSocket.close(
                        outbound, WebSocketErrorCode(codeNumber: 1013),
                        "Too slow: more messages waiting than the server keeps; reconnect")
                }
            }
            group.addTask {
                for try await message in inbound.messages(maxSize: 1 << 16) {
                    lastHeard.touch()
                    guard case .text(let text) = message else {
                        try await LogSocket.send(Self.binaryRefused, outbound)
                        continue
                    }
                    if let answer = Self.answer(text, subscriber, subscribable: subscribable) {
                        try await LogSocket.send(answer, outbound)
                    }
                }
            }
            group.addTask {
                // Closes a socket whose client has been silent for the idle timeout.
                let timeout = Int64(idleTimeout / .milliseconds(1))
                while true {
                    let silent = Self.now() - lastHeard.milliseconds
                    if silent >= timeout {
                        try await LogSocket.close(outbound, .normalClosure, "Idle")
                        return
                    }
                    try await Task.sleep(for: .milliseconds(min(timeout - silent, 1000)))
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// The answer to a client's text message (nil: none).
    static func answer(_ text: String, _ subscriber: EventsFeed.Subscriber, subscribable: Bool = true) -> ByteBuffer? {
        let message: [String: Any]
        let type: String
        switch read(text) {
        case .pong(let pong): return pong
        case .refused(let error): return error
        case .message(let read, let readType): (message, type) = (read, readType)
        }
        switch type {
        // (A `where` binds to the last pattern only: each needs its own.)
        case "subscribe" where subscribable, "unsubscribe" where subscribable:
            guard let names = message["channels"] as? [String] else {
                return error("invalid_message_format", "\"channels\" must be an array of channel names")
            }
            let unknown = names.filter { EventsChannel(rawValue: $0) == nil }
            guard unknown.isEmpty else {
                return error(
                    "validation_error", "Unknown channel: \(unknown.joined(separator: ", "))",
                    details: ["unknown_channels": unknown, "channels": EventsChannel.allCases.map(\.rawValue)])
            }
            let channels = Set(names.compactMap(EventsChannel.init(rawValue:)))
            let now = subscriber.update { current in
                if type == "subscribe" { current.formUnion(channels) } else { current.subtract(channels) }
            }
            var writer = JSONWriter()
            writer.object { object in
                object.field("type", "subscribed")
                object.array("channels") { array in for name in now.map(\.rawValue).sorted() { array.string(name) } }
            }
            return writer.buffer
        default:
            return error(
                "unknown_message_type",
                "Unknown message type '\(type)': " + (subscribable ? "subscribe, unsubscribe or ping" : "ping"))
        }
    }

    /// A client's text message, as every `/ws/…` route reads it.
    enum Read {
        /// A ping (the text `ping` or `{"type": "ping"}`): this is the answer.
        case pong(ByteBuffer)
        /// Not JSON, or not an object with a string `type`: this is the error to answer.
        case refused(ByteBuffer)
        case message([String: Any], type: String)
    }

    static func read(_ text: String) -> Read {
        if text.trimmingCharacters(in: .whitespacesAndNewlines) == "ping" {
            return .pong(LogSocket.control("pong", nil))
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) else {
            return .refused(error("invalid_json", "The message is not JSON"))
        }
        guard let message = object as? [String: Any], let type = message["type"] as? String else {
            return .refused(error("invalid_message_format", "A message is a JSON object with a string \"type\""))
        }
        return type == "ping" ? .pong(LogSocket.control("pong", nil)) : .message(message, type: type)
    }

    /// What a binary frame is answered with: messages are JSON in text frames.
    static var binaryRefused: ByteBuffer {
        error("invalid_message_format", "Messages are JSON text frames, not binary")
    }

    static func error(_ code: String, _ message: String, details: [String: [String]] = [:]) -> ByteBuffer {
        var writer = JSONWriter()
        writer.object { object in
            object.field("type", "error")
            object.field("error", code)
            object.field("message", message)
            object.object("details") { object in
                for (name, values) in details.sorted(by: { $0.key < $1.key }) {
                    object.array(name) { array in for value in values { array.string(value) } }
                }
            }
        }
        return writer.buffer
    }
}

/// When a socket's client was last heard from (milliseconds since 1970).
final class LastHeard: Sendable {
    private let time = Atomic<Int64>(EventsSocket.now())

    func touch() { time.store(EventsSocket.now(), ordering: .relaxed) }
    var milliseconds: Int64 { time.load(ordering: .relaxed) }
}
