import Domain
import EventStore
import Hummingbird
import Logging
import PostgresNIO
import Projections
import ServiceLifecycle

/// How `vigil serve` runs.
public struct ServerConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8000
    public var postgres: PostgresSettings
    /// Run the read models' projection runners in this process (each projection runs in one
    /// process of the cluster at a time; the others stand by).
    public var runProjections = true
    public var projectionOptions = ProjectionRunner.Options()

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
    let router = buildRouter(store: store, appender: appender)
    let runners: [any Service] =
        configuration.runProjections
        ? ReadModels.all.map {
            ProjectionRunner(projection: $0, store: store, notifier: notifier, options: configuration.projectionOptions)
        } : []
    var app = Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "vigil"),
        // Shut down in reverse: runners stop, then the appender drains, then the pool closes.
        services: [client, notifier, appender] + runners,
        logger: logger
    )
    // The read models' views must exist before the first request reads them.
    app.beforeServerStarts { try await store.registerProjections(ReadModels.all) }
    return app
}

func buildRouter(store: EventStore, appender: GroupCommitAppender) -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)
    router.middlewares.add(ErrorMiddleware())
    router.middlewares.add(LogRequestsMiddleware(.debug))
    HealthController(store: store).addRoutes(to: router)
    LogController(store: store).addRoutes(to: router)
    ProjectionsController(store: store).addRoutes(to: router)
    CamerasController(store: store, appender: appender).addRoutes(to: router)
    DetectionsController(store: store).addRoutes(to: router)
    // Levels use the default thresholds until the severity issue makes them editable.
    EventsController(store: store, appender: appender, thresholds: { .defaults }).addRoutes(to: router)
    return router
}
