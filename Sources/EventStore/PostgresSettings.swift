import Foundation
import Logging
import PostgresNIO

/// How Vigil reaches PostgreSQL, read from `VIGIL_PG_*` environment variables.
public struct PostgresSettings: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 5432
    public var username: String = "vigil"
    public var password: String? = nil
    public var database: String = "vigil"
    /// `disable` (default: the stack runs on loopback), `prefer` or `require`.
    public var tls: String = "disable"
    public var maximumConnections: Int = 40
    /// Sessions idle inside a transaction longer than this are closed by the server, so a
    /// stuck client can't hold the log's read horizon back for long.
    public var idleInTransactionTimeout: Duration = .seconds(30)
    public var applicationName: String = "vigil"

    public init() {}

    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    )
        throws -> PostgresSettings
    {
        var settings = PostgresSettings()
        if let host = environment["VIGIL_PG_HOST"], !host.isEmpty { settings.host = host }
        if let port = environment["VIGIL_PG_PORT"], !port.isEmpty {
            guard let value = Int(port), (1...65535).contains(value) else {
                throw SettingsError.invalid("VIGIL_PG_PORT", port)
            }
            settings.port = value
        }
        if let user = environment["VIGIL_PG_USER"], !user.isEmpty { settings.username = user }
        if let password = environment["VIGIL_PG_PASSWORD"], !password.isEmpty { settings.password = password }
        if let database = environment["VIGIL_PG_DATABASE"], !database.isEmpty { settings.database = database }
        if let tls = environment["VIGIL_PG_TLS"], !tls.isEmpty {
            guard ["disable", "prefer", "require"].contains(tls) else {
                throw SettingsError.invalid("VIGIL_PG_TLS", tls)
            }
            settings.tls = tls
        }
        if let pool = environment["VIGIL_PG_POOL_SIZE"], !pool.isEmpty {
            guard let value = Int(pool), value >= 2 else { throw SettingsError.invalid("VIGIL_PG_POOL_SIZE", pool) }
            settings.maximumConnections = value
        }
        if let timeout = environment["VIGIL_PG_IDLE_TX_TIMEOUT_MS"], !timeout.isEmpty {
            guard let value = Int(timeout), value >= 0 else {
                throw SettingsError.invalid("VIGIL_PG_IDLE_TX_TIMEOUT_MS", timeout)
            }
            settings.idleInTransactionTimeout = .milliseconds(value)
        }
        return settings
    }

    private var tlsSetting: PostgresClient.Configuration.TLS {
        switch tls {
        case "require": .require(.makeClientConfiguration())
        case "prefer": .prefer(.makeClientConfiguration())
        default: .disable
        }
    }

    /// Settings of every Vigil session.
    ///
    /// `plan_cache_mode = force_custom_plan`: Vigil's named statements (``PreparedStatements``)
    /// are parsed once per connection but planned at every call with its values, as unnamed
    /// ones are. PostgreSQL's default would switch a statement to one generic plan after five
    /// calls and keep it until the next `ANALYZE` of its tables, and a plan made while a table
    /// is small is wrong once it is big: a log read planned on an empty `events` table sorted
    /// every event after the checkpoint for each page (59 ms against 1.5 ms at 56k events, and
    /// the gap test's tailers fell 25 s behind). Tables start empty and fill fast exactly when
    /// it hurts most: a new install's backfill, a rebuild's new generation.
    private var startupParameters: [(String, String)] {
        let milliseconds =
            idleInTransactionTimeout.components.seconds * 1000
            + idleInTransactionTimeout.components.attoseconds / 1_000_000_000_000_000
        return [
            ("application_name", applicationName),
            ("idle_in_transaction_session_timeout", String(milliseconds)),
            ("plan_cache_mode", "force_custom_plan"),
        ]
    }

    /// Configuration of the connection pool.
    ///
    /// No keep-alive pings. PostgresNIO (1.33) sends a ping as a query on an idle connection, and
    /// a ping that starts as the pool closes that connection at shutdown never completes (a
    /// query on a closed connection never answers): the pool's `run()` then waits for it
    /// forever, and a server or test never stops (seen in the API suite: every connection
    /// closed, then "run ping pong" on one, and the client service never finished). A ping
    /// detects nothing the pool doesn't: a closed socket is seen at once, a handed-out closed
    /// connection is retried (``PostgresClient/guardedQuery(_:logger:)``), and a silent peer
    /// would hang the ping as it hangs a query.
    public var clientConfiguration: PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: host,
            port: port,
            username: username,
            password: password,
            database: database,
            tls: tlsSetting
        )
        configuration.options.maximumConnections = maximumConnections
        configuration.options.additionalStartupParameters = startupParameters
        configuration.options.keepAliveBehavior = nil
        return configuration
    }

    /// Configuration of one connection outside the pool (the availability probe's).
    public func connectionConfiguration(connectTimeout: Duration) throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS =
            switch self.tls {
            case "require": .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case "prefer": .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            default: .disable
            }
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: tls)
        configuration.options.connectTimeout = TimeAmount(connectTimeout)
        configuration.options.additionalStartupParameters = startupParameters
        return configuration
    }

    /// The same server, another database (tests and benchmarks use scratch databases).
    public func with(database: String) -> PostgresSettings {
        var copy = self
        copy.database = database
        return copy
    }
}

public enum SettingsError: Error, CustomStringConvertible {
    case invalid(String, String)

    public var description: String {
        switch self {
        case .invalid(let name, let value): "invalid value for \(name): '\(value)'"
        }
    }
}
