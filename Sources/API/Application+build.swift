import EventStore
import Hummingbird
import Logging
import PostgresNIO

/// How `vigil serve` runs.
public struct ServerConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8000
    public var postgres: PostgresSettings

    public init(host: String = "127.0.0.1", port: Int = 8000, postgres: PostgresSettings) {
        self.host = host
        self.port = port
        self.postgres = postgres
    }
}

/// The composition root: everything the server runs, wired once, for `main` and the tests.
public func buildApplication(_ configuration: ServerConfiguration, logger: Logger) -> some ApplicationProtocol {
    let client = PostgresClient(configuration: configuration.postgres.clientConfiguration, backgroundLogger: logger)
    let store = EventStore(client: client, logger: logger)
    let notifier = LogNotifier(client: client, logger: logger)
    let appender = GroupCommitAppender(store: store)
    let router = buildRouter(store: store)
    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "vigil"),
        // Shut down in reverse: the appender drains before the connection pool closes.
        services: [client, notifier, appender],
        logger: logger
    )
}

func buildRouter(store: EventStore) -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)
    router.middlewares.add(ErrorMiddleware())
    router.middlewares.add(LogRequestsMiddleware(.debug))
    HealthController(store: store).addRoutes(to: router)
    LogController(store: store).addRoutes(to: router)
    ProjectionsController(store: store).addRoutes(to: router)
    return router
}
