import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

/// `/ws/log?after=<checkpoint>&types=A,B&stream_prefix=camera-`: the log itself over a
/// WebSocket. It catches up from the table after `after`, then goes live; every message carries
/// its checkpoint, so a client that reconnects with the last one it got misses nothing and sees
/// nothing twice, across server restarts too.
///
/// - `after` absent: from now on (the log's head); `after` given: as `GET /api/log` takes it
///   (a malformed one, or one not readable yet, closes the socket with 1008 and `/api/log`'s
///   words for it).
/// - Messages (text): `{"type":"subscribed","checkpoint"}` first (where the stream starts), then
///   `{"type":"event","checkpoint","data":{…the event as /api/log shows it…}}` in log order, and
///   `{"type":"progress","checkpoint"}` now and then while a filter skips everything (resume from
///   it to skip what it skipped). `ping` (text, or `{"type":"ping"}`) is answered with
///   `{"type":"pong"}`, anything else with `/ws/events`' `{"type":"error",…}`.
/// - Auth (when on): the key in `X-API-Key`, `?api_key=` or `Sec-WebSocket-Protocol:
///   api-key.KEY`, with the route's permission (the raw log: admin); otherwise the socket is
///   opened and closed at once with 1008 and the reason.
/// - A slow client (its buffer at the ``LogBroadcaster`` full) drops back to reading the table
///   from its last checkpoint until it has caught up, then rejoins: nothing is dropped.
struct LogSocket {
    static let path = "/ws/log"

    let store: EventStore
    let broadcaster: LogBroadcaster
    let access: SocketAccess

    func addRoutes(to router: Router<VigilRequestContext>) {
        router.ws(RouterPath(stringLiteral: Self.path), shouldUpgrade: shouldUpgrade, onUpgrade: handle)
    }

    /// The WebSocket routes asked without an upgrade, on the HTTP router: `400` saying what they
    /// are (and `405` for other methods), not a `404` that says they don't exist.
    static func addPlainRequestRoutes(to router: Router<VigilRequestContext>) {
        for route in [path, EventsSocket.eventsPath, EventsSocket.systemPath] {
            router.get(RouterPath(stringLiteral: route)) { _, _ -> Response in
                throw APIError.badRequest(
                    "\(route) is a WebSocket route: open it with an upgrade request (Upgrade: websocket)")
            }
        }
    }

    /// What the query asks for; the errors `GET /api/log` answers for the same values.
    struct Query {
        var after: Checkpoint?
        var filter: LogFilter

        init(_ request: Request) throws {
            let query = QueryParameters(request)
            after = try query.string("after").flatMap { $0.isEmpty ? nil : try AsOf.checkpoint($0) }
            filter = LogFilter(types: query.list("types"), streamPrefix: query.string("stream_prefix"))
        }
    }

    @Sendable func shouldUpgrade(_ request: Request, context: VigilRequestContext) async throws -> RouterShouldUpgrade {
        var headers = HTTPFields()
        if let chosen = Self.subprotocol(request) { headers[.secWebSocketProtocol] = chosen }
        return .upgrade(headers)
    }

    /// The query, or why it is refused (`GET /api/log`'s words for the same values): a failed
    /// handshake can only be Hummingbird's empty 400, which a browser can't even read, so a
    /// refusal is a close with 1008 and this reason.
    func query(_ request: Request) async throws -> Result<Query, APIError> {
        let query: Query
        do {
            query = try Query(request)
        } catch let error as APIError {
            return .failure(error)
        }
        if let after = query.after {
            do {
                _ = try await store.read(after: after, limit: 1)
            } catch let error as LogReadError {
                return .failure(AsOf.notReadable(error))
            }
        }
        return .success(query)
    }

    /// The subprotocol answered: the first one offered that is not a key, else the key's own
    /// (a browser refuses a handshake that picks none of those it offered).
    static func subprotocol(_ request: Request) -> String? {
        let offered = request.headers[values: .secWebSocketProtocol].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return offered.first { !$0.hasPrefix("api-key.") } ?? offered.first
    }

    @Sendable func handle(
        _ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter,
        _ context: WebSocketRouterContext<VigilRequestContext>
    ) async throws {
        if let refusal = await access.refusal(context, path: Self.path) {
            try await Self.close(outbound, .policyViolation, refusal)
            return
        }
        access.sockets?.opened(Self.path)
        defer { access.sockets?.closed(Self.path) }
        let query: Query
        switch try await self.query(context.request) {
        case .success(let valid): query = valid
        case .failure(let refusal):
            try await Self.close(outbound, .policyViolation, refusal.detail)
            return
        }
        let start: Checkpoint
        if let after = query.after { start = after } else { start = try await store.head() }
        try await Self.send(Self.control("subscribed", start), outbound)
        let keyWatch = access.keyWatch(context.request, path: Self.path)
        try await withThrowingTaskGroup(of: Void.self) { group in
            keyWatch?.watch(&group, closing: outbound)
            group.addTask { try await stream(from: start, filter: query.filter, to: outbound) }
            group.addTask {
                // Pings are answered, anything else with an error; the client closing ends the
                // socket (and the stream).
                for try await message in inbound.messages(maxSize: 1 << 16) {
                    guard case .text(let text) = message else {
                        try await Self.send(EventsSocket.binaryRefused, outbound)
                        continue
                    }
                    try await Self.send(Self.answer(text), outbound)
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Sends everything after `start` that `filter` takes (``LogFollower``).
    private func stream(from start: Checkpoint, filter: LogFilter, to outbound: WebSocketOutboundWriter) async throws {
        try await LogFollower(store: store, broadcaster: broadcaster).follow(from: start, filter: filter) { step in
            switch step {
            case .event(let item): try await Self.send(item.message, outbound)
            case .progress(let next): try await Self.send(Self.control("progress", next), outbound)
            }
        }
    }

    /// The answer to a client's message: `pong` to a ping; to anything else, an error in
    /// `/ws/events`' words (the log takes no other message).
    static func answer(_ text: String) -> ByteBuffer {
        switch EventsSocket.read(text) {
        case .pong(let answer), .refused(let answer): answer
        case .message(_, let type):
            EventsSocket.error("unknown_message_type", "Unknown message type '\(type)': this socket takes ping")
        }
    }

    /// `{"type":"event","checkpoint","data":{…}}`, rendered once per event.
    static func message(_ event: RecordedEvent) -> ByteBuffer {
        var writer = JSONWriter()
        writer.object { object in
            object.field("type", "event")
            object.field("checkpoint", event.checkpoint.token)
            object.object("data") { $0.event(event) }
        }
        return writer.buffer
    }

    static func control(_ type: String, _ checkpoint: Checkpoint?) -> ByteBuffer {
        var writer = JSONWriter()
        writer.object { object in
            object.field("type", type)
            if let checkpoint { object.field("checkpoint", checkpoint.token) }
        }
        return writer.buffer
    }

    /// Closes with `code` and `reason` cut to the 123 bytes a close frame may carry (RFC 6455
    /// §5.5: a control frame's payload is at most 125 bytes, two of them the code), at a
    /// character's end, with `…` where it was cut. Sent whole, a longer reason (a refused
    /// checkpoint's words are 257 bytes) made clients fail the socket with 1002, reason unread.
    static func close(_ outbound: WebSocketOutboundWriter, _ code: WebSocketErrorCode, _ reason: String) async throws {
        try await outbound.close(code, reason: closeReason(reason))
    }

    static func closeReason(_ reason: String) -> String {
        guard reason.utf8.count > 123 else { return reason }
        var cut = ""
        for character in reason {
            guard cut.utf8.count + character.utf8.count <= 120 else { break }
            cut.append(character)
        }
        return cut + "…"
    }

    /// One text frame, its bytes shared with every other socket it goes to.
    static func send(_ message: ByteBuffer, _ outbound: WebSocketOutboundWriter) async throws {
        try await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: message)))
    }
}

/// Who may open a WebSocket route, as the HTTP routes' middleware decides it: first the
/// `websocket` tier of the rate limits (new connections per client address and window; before
/// the key, so a client guessing keys is limited too; a refusal is recorded in the audit trail
/// as a `429` would be), then the key (`X-API-Key`, `?api_key=` or `Sec-WebSocket-Protocol:
/// api-key.KEY`) against the access table, as ``AuthMiddleware`` checks it, then the query's
/// text (``QueryTextMiddleware``'s check). The answer is the reason a socket is closed with
/// (1008), nil when it may open.
struct SocketAccess: Sendable {
    let directory: KeyDirectory?
    let usage: KeyUsage?
    var limiter: RateLimiter? = nil
    var rejections: RejectionRecorder? = nil
    var trustedProxies = TrustedProxies.none
    /// Counts the sockets let in, per path (metrics).
    var sockets: OpenSockets? = nil

    func refusal(_ context: WebSocketRouterContext<VigilRequestContext>, path: String) async -> String? {
        let request = context.request
        let client = trustedProxies.client(of: request, peer: context.requestContext.remoteAddress)
        if let limited = await rateLimited(request, client: client) { return limited }
        // The key's usage records the client's address, as an HTTP request's does (without it,
        // a socket's use erased the address a request had recorded).
        let refused = await RequestOrigin.$clientAddress.withValue(client) { await keyRefusal(request, path: path) }
        // Then text PostgreSQL can't hold (NUL) in the query: an HTTP route's 422, as the reason.
        return refused ?? QueryTextMiddleware<VigilRequestContext>.socketRefusal(request)
    }

    private func rateLimited(_ request: Request, client: String?) async -> String? {
        guard let limiter else { return nil }
        switch await limiter.check(tier: .websocket, client: client ?? "local") {
        case .unlimited, .allowed: return nil
        case .unavailable: return limiter.failClosed ? "Rate limiter unavailable" : nil
        case .refused(let limit, _, let retryAfter):
            let detail =
                "Rate limit exceeded: \(limit) new connections per window for the websocket tier; "
                + "retry in \(retryAfter) s"
            if let rejections {
                await RequestOrigin.$clientAddress.withValue(client) {
                    await rejections.recordRateLimited(request, tier: .websocket, detail: detail)
                }
            }
            return detail
        }
    }

    /// The key a socket was let in with, to check again while it is open (nil: auth is off, or
    /// the route needs no key).
    func keyWatch(_ request: Request, path: String) -> KeyWatch? {
        guard let directory, case .needs = AccessPolicy.access(.get, path),
            let presented = AuthMiddleware<VigilRequestContext>.presentedKey(request)
        else { return nil }
        return KeyWatch(directory: directory, presented: presented)
    }

    private func keyRefusal(_ request: Request, path: String) async -> String? {
        guard let directory else { return nil }
        guard case .needs(let permission) = AccessPolicy.access(.get, path) else { return nil }
        guard let presented = AuthMiddleware<VigilRequestContext>.presentedKey(request) else {
            return "Missing API key: send it in the X-API-Key header"
        }
        guard let principal = try? await directory.principal(for: presented) else { return "Invalid API key" }
        let allowed = principal.role.allows(permission)
        usage?.record(principal.name, refused: !allowed)
        return allowed ? nil : "API key '\(principal.name)' (role \(principal.role.rawValue)) may not GET \(path)"
    }
}

/// A socket's key, checked again every `interval` while the socket is open: a key revoked
/// (through this instance: within the interval; through another: within the directory's cache
/// time too) or expired closes its sockets with 1008, as it refuses its requests.
struct KeyWatch: Sendable {
    static let reason = "API key revoked or expired"

    let directory: KeyDirectory
    let presented: String
    var interval: Duration = .seconds(1)

    /// Returns once the key opens nothing any more. A lookup that failed (the database down) is
    /// not a revocation: the socket stays.
    func untilRevoked() async throws {
        while true {
            try await Task.sleep(for: interval)
            do {
                if try await directory.principal(for: presented) == nil { return }
            } catch {
                try Task.checkCancellation()
            }
        }
    }

    /// Adds to `group` the task that closes the socket once its key is revoked.
    func watch(_ group: inout ThrowingTaskGroup<Void, any Error>, closing outbound: WebSocketOutboundWriter) {
        group.addTask {
            try await untilRevoked()
            try await LogSocket.close(outbound, .policyViolation, Self.reason)
        }
    }
}

/// Open WebSocket clients per path, for metrics: a socket counts from the moment it is let in
/// until its handler returns.
final class OpenSockets: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    func opened(_ path: String) { counts.withLock { $0[path, default: 0] += 1 } }
    func closed(_ path: String) { counts.withLock { $0[path, default: 0] -= 1 } }
    func count(_ path: String) -> Int { counts.withLock { $0[path] ?? 0 } }
}
