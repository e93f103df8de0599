/// A Redis reply, kept binary safe: bulk strings stay raw bytes so payloads that are not
/// UTF-8 survive a round trip, and ``string`` decodes them when the caller knows they are text.
public enum RedisValue: Sendable, Hashable {
    /// A bulk string.
    case string([UInt8])
    case integer(Int64)
    case array([RedisValue])
    /// A nil bulk string or nil array: a missing key, a blocking pop that timed out.
    case null
    /// A simple status reply such as `OK` or `PONG`.
    case status(String)
    /// An error reply nested in an array (`EXEC`, scripts). A top-level error reply is thrown
    /// as ``RedisError/server(_:)`` instead.
    case error(String)

    /// A bulk string holding `text` as UTF-8.
    public init(_ text: String) { self = .string(Array(text.utf8)) }

    /// A bulk string decoded as UTF-8 (invalid sequences become U+FFFD), or a status text.
    public var string: String? {
        switch self {
        case .string(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let text): text
        default: nil
        }
    }

    /// The exact bytes of a bulk string.
    public var bytes: [UInt8]? {
        if case .string(let bytes) = self { return bytes }
        return nil
    }

    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    public var array: [RedisValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    public var isNull: Bool { self == .null }
}
