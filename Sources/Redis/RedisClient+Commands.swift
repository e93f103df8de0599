/// Typed helpers for the commands Vigil uses; anything else goes through ``RedisClient/send(_:)``.
extension RedisClient {
    /// Which end of a list `LMOVE`/`BLMOVE` take from or push to.
    public enum ListEnd: String, Sendable {
        case left = "LEFT"
        case right = "RIGHT"
    }

    /// Succeeds when Redis answers `PONG`.
    public func ping() async throws {
        let reply = try await send(["PING"])
        guard reply == .status("PONG") else { throw RedisError.unexpectedReply("PING answered \(reply)") }
    }

    /// Prepends `values` (the last ends up first); returns the new length.
    @discardableResult
    public func lpush(_ key: String, _ values: [String]) async throws -> Int {
        try await integer(["LPUSH", key] + values)
    }

    /// Appends `values`; returns the new length.
    @discardableResult
    public func rpush(_ key: String, _ values: [String]) async throws -> Int {
        try await integer(["RPUSH", key] + values)
    }

    public func llen(_ key: String) async throws -> Int {
        try await integer(["LLEN", key])
    }

    /// Elements `start...stop` (inclusive, negative counts from the end: `0, -1` is everything).
    public func lrange(_ key: String, _ start: Int, _ stop: Int) async throws -> [String] {
        let reply = try await send(["LRANGE", key, String(start), String(stop)])
        guard let elements = reply.array else { throw RedisError.unexpectedReply("LRANGE answered \(reply)") }
        return try elements.map { element in
            guard let bytes = element.bytes else { throw RedisError.unexpectedReply("LRANGE answered \(reply)") }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// Removes `count` occurrences of `value` (from the head; negative: from the tail; 0: all);
    /// returns how many were removed.
    @discardableResult
    public func lrem(_ key: String, _ count: Int, _ value: String) async throws -> Int {
        try await integer(["LREM", key, String(count), value])
    }

    /// Deletes `keys`; returns how many existed.
    @discardableResult
    public func del(_ keys: [String]) async throws -> Int {
        try await integer(["DEL"] + keys)
    }

    public func get(_ key: String) async throws -> String? {
        try await optionalString(send(["GET", key]), "GET")
    }

    /// `GET` that answers within `limit` or throws ``RedisError/timeout(_:)`` (see ``send(_:within:)``).
    public func get(_ key: String, within limit: Duration) async throws -> String? {
        try await optionalString(send(["GET", key], within: limit), "GET")
    }

    public func set(_ key: String, _ value: String, expireSeconds: Int? = nil) async throws {
        try await set(key, value, expireSeconds: expireSeconds, within: nil)
    }

    /// `SET` that answers within `limit` (nil: the command timeout) or throws ``RedisError/timeout(_:)``.
    public func set(_ key: String, _ value: String, expireSeconds: Int? = nil, within limit: Duration?) async throws {
        var arguments = ["SET", key, value]
        if let expireSeconds { arguments += ["EX", String(expireSeconds)] }
        let reply: RedisValue
        if let limit { reply = try await send(arguments, within: limit) } else { reply = try await send(arguments) }
        guard reply == .status("OK") else { throw RedisError.unexpectedReply("SET answered \(reply)") }
    }

    /// Moves one element from `source` to `destination`; nil when `source` is empty.
    @discardableResult
    public func lmove(
        _ source: String, _ destination: String, from: ListEnd = .right, to: ListEnd = .left
    )
        async throws -> String?
    {
        try await optionalString(send(["LMOVE", source, destination, from.rawValue, to.rawValue]), "LMOVE")
    }

    /// Like ``lmove(_:_:from:to:)`` but waits up to `timeout` seconds (0: until cancelled) for
    /// `source` to have an element; nil on timeout, `CancellationError` within about a second of
    /// the task being cancelled.
    public func blmove(
        _ source: String, _ destination: String, from: ListEnd = .right, to: ListEnd = .left, timeout: Double
    ) async throws -> String? {
        let reply = try await sendBlocking(timeout: timeout) {
            ["BLMOVE", source, destination, from.rawValue, to.rawValue, $0]
        }
        return try optionalString(reply, "BLMOVE")
    }

    /// Pops the last element of the first non-empty list of `keys`, waiting up to `timeout`
    /// seconds (0: until cancelled); nil on timeout, `CancellationError` within about a second of
    /// the task being cancelled.
    public func brpop(_ keys: [String], timeout: Double) async throws -> (key: String, value: String)? {
        let reply = try await sendBlocking(timeout: timeout) { ["BRPOP"] + keys + [$0] }
        if reply == .null { return nil }
        guard let pair = reply.array, pair.count == 2, let key = pair[0].bytes, let value = pair[1].bytes else {
            throw RedisError.unexpectedReply("BRPOP answered \(reply)")
        }
        return (String(decoding: key, as: UTF8.self), String(decoding: value, as: UTF8.self))
    }

    private func integer(_ arguments: [String]) async throws -> Int {
        let reply = try await send(arguments)
        guard let value = reply.integer else { throw RedisError.unexpectedReply("\(arguments[0]) answered \(reply)") }
        return Int(value)
    }

    private func optionalString(_ reply: RedisValue, _ command: String) throws -> String? {
        if reply == .null { return nil }
        guard case .string = reply, let text = reply.string else {
            throw RedisError.unexpectedReply("\(command) answered \(reply)")
        }
        return text
    }
}
