import Logging
import PostgresNIO

/// PostgreSQL refused or never answered the first connection of a one-off command.
///
/// A pool asked for a connection it can't open keeps trying until its circuit breaker trips
/// (about a minute), then reports only `connectionCreationCircuitBreakerTripped`, never why: a
/// closed port and a database that doesn't exist both looked like that after 67 s. So
/// ``PostgresSettings/withRunningClient(logger:_:)`` first opens one connection itself, with a
/// short timeout, and reports this error with the server's own reason.
public struct DatabaseUnreachable: Error, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var database: String
    /// PostgreSQL's message (`database "x" does not exist`), or the connection's error.
    public var reason: String

    public var description: String {
        "cannot reach PostgreSQL at \(host):\(port)/\(database): \(reason)"
    }

    init(_ settings: PostgresSettings, error: any Error) {
        host = settings.host
        port = settings.port
        database = settings.database
        reason = Self.reason(error)
    }

    static func reason(_ error: any Error) -> String {
        guard let database = error as? PSQLError else { return String(describing: error) }
        if let message = database.serverInfo?[.message] {
            let state = database.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return message + state
        }
        if let underlying = database.underlying { return String(describing: underlying) }
        return String(reflecting: database)
    }
}

extension PostgresSettings {
    /// Opens and closes one connection; throws ``DatabaseUnreachable`` when that fails.
    public func checkReachable(logger: Logger, connectTimeout: Duration = .seconds(10)) async throws {
        do {
            let connection = try await PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.next(),
                configuration: connectionConfiguration(connectTimeout: connectTimeout), id: 0, logger: logger
            ).get()
            try? await connection.close()
        } catch {
            throw DatabaseUnreachable(self, error: error)
        }
    }
}
