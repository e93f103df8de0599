import Foundation

/// Where Redis is and how long to wait for it, read from `VIGIL_REDIS_*` like the PostgreSQL
/// settings; `VIGIL_REDIS=off` runs Vigil without Redis.
public struct RedisSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var password: String?
    /// How long to wait for the TCP connection, so calls fail fast while Redis is down.
    public var connectTimeout: Duration = .seconds(2)
    /// How long a command may wait for its reply, so a hung server can't hang a caller.
    /// Blocking commands wait this long on top of their own block time.
    public var commandTimeout: Duration = .seconds(5)
    /// Connections shared by ordinary commands.
    public var maximumConnections: Int = 4
    /// Blocking commands (`BLMOVE`, `BRPOP`) hold a connection for their whole wait, so they get
    /// connections of their own, at most this many at once.
    public var maximumBlockingConnections: Int = 32

    public init(host: String = "127.0.0.1", port: Int = 6379, password: String? = nil) {
        self.host = host
        self.port = port
        self.password = password
    }

    /// `VIGIL_REDIS_HOST` (default 127.0.0.1), `VIGIL_REDIS_PORT` (default 6379) and
    /// `VIGIL_REDIS_PASSWORD`; nil when `VIGIL_REDIS=off`. Throws on an invalid port.
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> RedisSettings? {
        if environment["VIGIL_REDIS"]?.lowercased() == "off" { return nil }
        var settings = RedisSettings()
        if let host = environment["VIGIL_REDIS_HOST"], !host.isEmpty { settings.host = host }
        if let port = environment["VIGIL_REDIS_PORT"], !port.isEmpty {
            guard let value = Int(port), (1...65535).contains(value) else {
                throw RedisError.invalidSetting(name: "VIGIL_REDIS_PORT", value: port)
            }
            settings.port = value
        }
        if let password = environment["VIGIL_REDIS_PASSWORD"], !password.isEmpty { settings.password = password }
        return settings
    }
}
