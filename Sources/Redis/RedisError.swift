/// Why a Redis call failed, split by what the caller can do about it: a `server` error is the
/// command's fault and the connection stays usable; a `connection` error means Redis could not
/// be reached or the connection broke (it is dropped and the next call reconnects), so retrying
/// later can succeed.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An error reply, e.g. `WRONGTYPE Operation against a key holding the wrong kind of value`.
    case server(String)
    /// Connecting, authenticating, sending or reading failed, or timed out.
    case connection(String)
    /// Redis didn't answer within the caller's deadline (``RedisClient/send(_:within:)``).
    case timeout(Duration)
    /// The reply does not have the shape the typed helper expects.
    case unexpectedReply(String)
    /// An environment variable of ``RedisSettings/fromEnvironment(_:)`` has an invalid value.
    case invalidSetting(name: String, value: String)

    public var description: String {
        switch self {
        case .server(let message): "Redis error: \(message)"
        case .connection(let message): "Redis connection error: \(message)"
        case .timeout(let limit): "Redis did not answer within \(limit)"
        case .unexpectedReply(let message): "unexpected Redis reply: \(message)"
        case .invalidSetting(let name, let value): "invalid value for \(name): '\(value)'"
        }
    }
}
