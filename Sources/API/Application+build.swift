import Domain
import EventStore
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import Pipeline
import PostgresNIO
import Projections
import Redis
import ServiceLifecycle

/// How many pool connections requests get at least, beside what the runners hold.
let connectionsForRequests = 8

/// The composition root: everything the server runs, wired once, for `main` and the tests.
///
/// - Throws: ``ConfigurationError`` when the pool (`VIGIL_PG_POOL_SIZE`) can't hold the
///   connections the runners keep for as long as they run and still serve requests.
/// The parts of a server, built from its configuration: the pool, the store, the projections
/// and the router. Nothing connects until the application runs.
struct ServerParts {
    let client: PostgresClient
    let store: EventStore
    let notifier: LogNotifier
    let appender: GroupCommitAppender
    let availability: DatabaseAvailability
    let redis: RedisClient?
    let queue: AnalysisQueue
    let projections: [any Projection]
    /// The keys' usage counters, when auth is on.
    let keyUsage: KeyUsage?
    /// The one tail of the log feeding every `/ws/log` socket.
    let broadcaster: LogBroadcaster
    /// What every `/ws/events` socket is fed.
    let eventsFeed: EventsFeed
    /// The status `/ws/system` sends every 5 s.
    let statusFeed: SystemStatusFeed
    let router: Router<VigilRequestContext>
    /// The routes a WebSocket upgrade request is matched against (`/ws/…`).
    let webSocketRouter: Router<VigilRequestContext>
    /// Keeps the server's warnings and errors for `/api/logs` (nil: `logRecordLevel` is nil).
    let recorder: LogRecorder?
    /// `GET /api/metrics`.
    let metrics: ServerMetrics

    /// The pool of `vigil serve`: a connection that goes back idle is closed after 10 s, not
    /// PostgresNIO's 60. The pool times each one out with a `Task.sleep`, scheduled each time it
    /// goes back and cancelled when it is leased again, and a cancelled sleep stays allocated
    /// until its deadline: after the demo backfill, 24,000 of them held 12 MB for a minute. The
    /// runners hold theirs for as long as they run, and the availability probe uses one every
    /// second, so a quiet server still answers on a warm connection. (Keeping connections open
    /// instead, `minimumConnections`, crashes PostgresNIO 1.33's pool when PostgreSQL restarts:
    /// a precondition in its state machine, found by `tools/faults/pg-restart`.)
    static func poolConfiguration(_ configuration: ServerConfiguration) -> PostgresClient.Configuration {
        var pool = configuration.postgres.clientConfiguration
        pool.options.connectionIdleTimeout = .seconds(10)
        return pool
    }

    init(_ configuration: ServerConfiguration, logger serverLogger: Logger) {
        // Every part logs through this logger: what it logs at or above `logRecordLevel` is
        // recorded too (the recorder itself logs through the server's logger, not recorded).
        var logger = serverLogger
        let pool = PostgresClient(configuration: Self.poolConfiguration(configuration), backgroundLogger: serverLogger)
        let operationalLogs = OperationalLogs(database: ReadDatabase(client: pool, logger: serverLogger))
        recorder = configuration.logRecordLevel.map {
            LogRecorder(
                logs: operationalLogs, level: $0, retention: configuration.logRetention, logger: serverLogger)
        }
        if let recorder { logger.handler = recorder.handler(wrapping: logger.handler) }
        // The pool's own messages (connections lost and made) are not recorded: the records
        // are written through it.
        client = pool
        store = EventStore(client: client, logger: logger)
        notifier = LogNotifier(client: client, logger: logger)
        let metrics = ServerMetrics()
        let sockets = OpenSockets()
        self.metrics = metrics
        appender = GroupCommitAppender(
            store: store, options: .init(onCommit: { metrics.committed(requests: $0, events: $1) }))
        availability = DatabaseAvailability(
            settings: configuration.postgres, logger: logger, pool: client,
            timeoutsToGoDown: configuration.probeTimeoutsToGoDown)
        redis = configuration.redis.map { RedisClient(settings: $0, logger: logger) }
        var projections: [any Projection] = ReadModels.all
        projections.append(
            BatchAggregatorReactor(defaults: configuration.settings.config, clock: configuration.batchClock))
        projections.append(AlertEngine(store: store, webhookURLs: configuration.webhooks?.urls ?? []))
        queue = AnalysisQueue(prefix: configuration.redisPrefix)
        if let redis {
            projections.append(
                AnalysisPublisher(redis: redis, queue: queue, analysisTimeout: configuration.analysisTimeout))
        }
        self.projections = projections
        let settings = SystemSettingsReader(store: store, defaults: configuration.settings)
        let reads = ReadDatabase(client: client, logger: logger)
        let readModels = APIReadModels(
            cameras: CamerasReadModel(database: reads), detections: DetectionsReadModel(database: reads),
            securityEvents: SecurityEventsReadModel(database: reads), analytics: AnalyticsReadModel(database: reads),
            apiKeys: ApiKeysReadModel(database: reads), audit: AuditReadModel(database: reads),
            logs: operationalLogs, pipeline: PipelineReadModel(database: reads), zones: ZonesReadModel(database: reads),
            alertRules: AlertRulesReadModel(database: reads),
            alertCandidates: AlertCandidatesReadModel(database: reads),
            alerts: AlertsReadModel(database: reads), notifications: NotificationsReadModel(database: reads),
            entities: EntitiesReadModel(database: reads)
        )
        let directory =
            configuration.isAuthOn
            ? KeyDirectory(
                adminKey: configuration.adminKey, workerKey: configuration.workerKey, keys: readModels.apiKeys,
                ttl: configuration.keyCacheTTL) : nil
        let keyUsage =
            configuration.isAuthOn
            ? KeyUsage(keys: readModels.apiKeys, interval: configuration.keyUsageInterval, logger: logger) : nil
        self.keyUsage = keyUsage
        let knownCameras = KnownCameras(cameras: readModels.cameras, store: store)
        broadcaster = LogBroadcaster(
            store: store, notifier: notifier, logger: logger, ringCapacity: configuration.logSocketRing,
            bufferCapacity: configuration.logSocketBuffer, observers: [knownCameras])
        // Refused commands are recorded in the log (the audit trail shows failures), rate-limited.
        let rejections = RejectionRecorder(
            appender: appender, logger: logger, burst: configuration.refusalBurst,
            interval: configuration.refusalInterval)
        let limiter = redis.map {
            RateLimiter(
                redis: $0, prefix: configuration.redisPrefix, settings: settings,
                window: configuration.rateLimitWindow, timeout: configuration.rateLimitTimeout,
                failClosed: configuration.rateLimitFailClosed, logger: logger)
        }
        eventsFeed = EventsFeed(
            follower: LogFollower(store: store, broadcaster: broadcaster), settings: settings, logger: logger,
            capacity: configuration.logSocketBuffer)
        statusFeed = SystemStatusFeed(
            feed: eventsFeed, store: store, cameras: readModels.cameras, redis: redis, queue: queue,
            availability: availability, limiter: limiter, interval: configuration.systemStatusInterval)
        webSocketRouter = buildWebSocketRouter(
            store: store, broadcaster: broadcaster, eventsFeed: eventsFeed, statusFeed: statusFeed,
            access: SocketAccess(
                directory: directory, usage: keyUsage, limiter: limiter, rejections: rejections,
                trustedProxies: configuration.trustedProxies, sockets: sockets),
            trustedProxies: configuration.trustedProxies,
            idleTimeout: configuration.webSocketIdleTimeout)
        router = buildRouter(
            store: store, readModels: readModels, knownCameras: knownCameras, availability: availability,
            appender: appender, projections: projections, settings: settings, directory: directory, keyUsage: keyUsage,
            rejections: rejections, limiter: limiter, redis: redis,
            redisPrefix: configuration.redisPrefix, runsAnalyzer: configuration.runHeuristicAnalyzer,
            cacheTimeout: configuration.cacheTimeout,
            readYourWrites: ReadYourWrites(
                store: store, timeout: configuration.readYourWritesTimeout, progress: notifier.progress,
                poll: configuration.readYourWritesPoll),
            trustedProxies: configuration.trustedProxies, eventTimes: configuration.eventTimes,
            liveFeeds: LiveFeedsHealth(
                broadcaster: broadcaster, events: eventsFeed, status: statusFeed, sockets: sockets),
            metrics: metrics, webhooks: configuration.webhooks, archiveDirectory: configuration.archiveDirectory)
    }
}

/// Every route the server serves, as `"METHOD /path/{parameter}"`, sorted (`HEAD` answers on
/// every `GET` route besides). `docs/API.md`'s route table is checked against it.
public func registeredRoutes(_ configuration: ServerConfiguration, logger: Logger) -> [String] {
    let parts = ServerParts(configuration, logger: logger)
    // The WebSocket routes are on both routers (the HTTP one answers them without an upgrade).
    return Set((parts.router.routes + parts.webSocketRouter.routes).map { "\($0.method.rawValue) \($0.path)" })
        .sorted()
}

public func buildApplication(_ configuration: ServerConfiguration, logger: Logger) throws -> some ApplicationProtocol {
    let parts = ServerParts(configuration, logger: logger)
    let (client, store, notifier, appender, availability, redis, queue, projections, router) = (
        parts.client, parts.store, parts.notifier, parts.appender, parts.availability, parts.redis, parts.queue,
        parts.projections, parts.router
    )
    // A read model's runner has two roles (live, rebuild), a reactor's one (it is never rebuilt);
    // each holds a pooled connection for as long as it runs (its lease), and the notifier one
    // for LISTEN: a smaller pool starves every request.
    let held = (configuration.runProjections ? projections.reduce(0) { $0 + ($1.isReactor ? 1 : 2) } : 0) + 1
    let pool = configuration.postgres.maximumConnections
    guard pool >= held + connectionsForRequests else {
        throw ConfigurationError(
            description: "VIGIL_PG_POOL_SIZE is \(pool), but this server's runners hold \(held) connections for as "
                + "long as they run (two per read model, one per reactor, one for notifications) and requests need at least "
                + "\(connectionsForRequests) more: set it to \(held + connectionsForRequests) or more, or run the "
                + "projections elsewhere (--projections off)")
    }
    var services: [any Service] = []
    if configuration.runProjections {
        // The live roles read the log through the broadcaster's tail: one read per commit.
        let shared = SharedTailPages(
            broadcaster: parts.broadcaster, table: TablePages(store: store, notifier: notifier))
        var options = configuration.projectionOptions
        options.archiveDirectory = options.archiveDirectory ?? configuration.archiveDirectory
        services += projections.map {
            ProjectionRunner(projection: $0, store: store, notifier: notifier, options: options, source: shared)
        }
    }
    if let redis, configuration.runHeuristicAnalyzer {
        services.append(
            HeuristicAnalyzerWorker(
                redis: redis, queue: queue, store: store, options: configuration.analyzerOptions))
    }
    if let webhooks = configuration.webhooks {
        services.append(
            WebhookDeliverer(
                settings: webhooks, store: store,
                systemSettings: SystemSettingsReader(store: store, defaults: configuration.settings),
                wake: notifier.progress, logger: store.logger))
    }
    let registered = projections
    var app = Application(
        responder: HeadResponder(base: MethodNotAllowedResponder(base: router.buildResponder())),
        // A connection that sends nothing for this long, between requests or in the middle of
        // one (a half-sent head, a stalled body), is closed: slow clients can't hold them.
        server: .vigil(
            webSocketRouter: parts.webSocketRouter, idleTimeout: configuration.httpIdleTimeout,
            // A socket whose peer stops answering pings is closed.
            webSocket: .init(autoPing: .enabled(timePeriod: .seconds(30)))),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "vigil"),
        // Shut down in reverse: workers and runners stop, then the appender drains, then the pool closes.
        services: [
            client, PoolKick(client: client), availability, notifier, appender, parts.broadcaster, parts.eventsFeed,
            parts.statusFeed,
            IdleMemory(appends: notifier.signal, broadcaster: parts.broadcaster),
        ]
            + (parts.keyUsage.map { [$0] } ?? []) + (parts.recorder.map { [$0] } ?? [])
            + services,
        logger: logger
    )
    // The read models' views must exist before the first request reads them, and the
    // `/ws/events` feed must know where it starts before the first socket subscribes.
    let eventsFeed = parts.eventsFeed
    app.beforeServerStarts {
        try await store.registerProjections(registered)
        _ = try await eventsFeed.startingPoint()
    }
    return app
}

/// The read models the controllers read through (the read side's seam): built once, in
/// ``buildApplication(_:logger:)``, over the server's pool.
struct APIReadModels {
    var cameras: CamerasReadModel
    var detections: DetectionsReadModel
    var securityEvents: SecurityEventsReadModel
    var analytics: AnalyticsReadModel
    var apiKeys: ApiKeysReadModel
    var audit: AuditReadModel
    /// `/api/logs` (not a read model of the log: operational records beside them).
    var logs: OperationalLogs
    var pipeline: PipelineReadModel
    var zones: ZonesReadModel
    var alertRules: AlertRulesReadModel
    var alertCandidates: AlertCandidatesReadModel
    var alerts: AlertsReadModel
    var notifications: NotificationsReadModel
    var entities: EntitiesReadModel
}

func buildRouter(
    store: EventStore, readModels: APIReadModels, knownCameras: KnownCameras, availability: DatabaseAvailability,
    appender: GroupCommitAppender,
    projections: [any Projection],
    settings: SystemSettingsReader,
    directory: KeyDirectory?, keyUsage: KeyUsage?, rejections: RejectionRecorder, limiter: RateLimiter?,
    redis: RedisClient?,
    redisPrefix: String,
    runsAnalyzer: Bool = true,
    cacheTimeout: Duration = .milliseconds(50), readYourWrites: ReadYourWrites,
    trustedProxies: TrustedProxies = .none,
    eventTimes: EventTimeWindow = .standard,
    liveFeeds: LiveFeedsHealth? = nil,
    metrics: ServerMetrics? = nil,
    webhooks: WebhookSettings? = nil,
    archiveDirectory: String? = nil
) -> Router<VigilRequestContext> {
    let router = Router(context: VigilRequestContext.self)
    if let metrics { router.middlewares.add(MetricsMiddleware(metrics: metrics)) }
    router.middlewares.add(MethodProbeMiddleware())
    router.middlewares.add(ErrorMiddleware(logger: store.logger))
    router.middlewares.add(ClientAddressMiddleware(trustedProxies: trustedProxies))
    router.middlewares.add(LogRequestsMiddleware(.debug))
    router.middlewares.add(BodyLimitMiddleware())
    router.middlewares.add(QueryTextMiddleware())
    router.middlewares.add(AvailabilityMiddleware(availability: availability))
    // Before auth: a client guessing keys is limited too.
    router.middlewares.add(RateLimitMiddleware(limiter: limiter, rejections: rejections))
    router.middlewares.add(AuthMiddleware(directory: directory, usage: keyUsage, rejections: rejections))
    router.middlewares.add(RejectionMiddleware(recorder: rejections))
    HealthController(store: store, availability: availability, limiter: limiter).addRoutes(to: router)
    SystemHealthController(
        store: store, availability: availability, limiter: limiter, redis: redis, runsAnalyzer: runsAnalyzer
    ).addRoutes(to: router)
    LogController(store: store).addRoutes(to: router)
    LogSocket.addPlainRequestRoutes(to: router)
    ProjectionsController(store: store, projections: projections).addRoutes(to: router)
    let timeTravel = TimeTravel(
        store: store, settings: settings, securityEvents: readModels.securityEvents, cameras: readModels.cameras)
    CamerasController(
        cameras: readModels.cameras, store: store, appender: appender, readYourWrites: readYourWrites,
        timeTravel: timeTravel
    ).addRoutes(to: router)
    DetectionsController(
        detections: readModels.detections, cameras: knownCameras, store: store, appender: appender,
        eventTimes: eventTimes
    )
    .addRoutes(to: router)
    // Every level shown is derived from the score under the thresholds in force when it is read.
    let thresholds: @Sendable () async throws -> SeverityThresholds = { try await settings.current().thresholds }
    EventsController(
        events: readModels.securityEvents, store: store, appender: appender, readYourWrites: readYourWrites,
        thresholds: thresholds, timeTravel: timeTravel
    ).addRoutes(to: router)
    AnalysisController(
        events: readModels.securityEvents,
        store: store, appender: appender, readYourWrites: readYourWrites, thresholds: thresholds
    ).addRoutes(to: router)
    SystemController(
        store: store, analytics: readModels.analytics, appender: appender, readYourWrites: readYourWrites,
        settings: settings, timeTravel: timeTravel
    )
    .addRoutes(to: router)
    AnalyticsController(
        analytics: readModels.analytics, settings: settings, redis: redis, redisPrefix: redisPrefix,
        cacheTimeout: cacheTimeout, logger: store.logger
    ).addRoutes(to: router)
    ApiKeysController(
        keys: readModels.apiKeys, store: store, appender: appender, readYourWrites: readYourWrites, directory: directory
    ).addRoutes(to: router)
    AuditController(audit: readModels.audit).addRoutes(to: router)
    LogsController(logs: readModels.logs, times: eventTimes).addRoutes(to: router)
    AlertRulesController(
        rules: readModels.alertRules, candidates: readModels.alertCandidates, zones: readModels.zones,
        store: store, appender: appender, readYourWrites: readYourWrites
    ).addRoutes(to: router)
    AlertsController(
        alerts: readModels.alerts, store: store, appender: appender, readYourWrites: readYourWrites
    ).addRoutes(to: router)
    EntitiesController(
        entities: readModels.entities, cameras: knownCameras, store: store, appender: appender,
        readYourWrites: readYourWrites, eventTimes: eventTimes
    ).addRoutes(to: router)
    NotificationController(webhooks: webhooks, appender: appender, readYourWrites: readYourWrites)
        .addRoutes(to: router)
    NotificationPreferencesController(
        notifications: readModels.notifications, cameras: readModels.cameras, store: store, appender: appender,
        readYourWrites: readYourWrites
    ).addRoutes(to: router)
    ZonesController(
        zones: readModels.zones, cameras: readModels.cameras, store: store, appender: appender,
        readYourWrites: readYourWrites
    ).addRoutes(to: router)
    SystemStatsController(
        pipeline: readModels.pipeline, redis: redis, queue: AnalysisQueue(prefix: redisPrefix), started: Date()
    ).addRoutes(to: router)
    DeadLettersController(store: store, queues: redis.map { DeadLetterQueues(redis: $0, prefix: redisPrefix) })
        .addRoutes(to: router)
    CleanupController(store: store, settings: settings, projections: projections, archiveDirectory: archiveDirectory)
        .addRoutes(to: router)
    WebSocketRegistry.addRoutes(to: router)
    OpenAPIController().addRoutes(to: router)
    liveFeeds?.addRoutes(to: router)
    if let metrics, let liveFeeds {
        metrics.addRoute(to: router, store: store, availability: availability, redis: redis, feeds: liveFeeds)
    }
    return router
}

/// The WebSocket routes, on a router of their own (an upgrade request is matched only here),
/// with the client address and the query check every request gets. The `websocket` rate-limit
/// tier and auth are the handlers' (``SocketAccess``): a refused handshake could only be
/// Hummingbird's empty 400, so a refusal is a close with 1008 and its reason.
func buildWebSocketRouter(
    store: EventStore, broadcaster: LogBroadcaster, eventsFeed: EventsFeed, statusFeed: SystemStatusFeed,
    access: SocketAccess,
    trustedProxies: TrustedProxies, idleTimeout: Duration
) -> Router<VigilRequestContext> {
    let router = Router(context: VigilRequestContext.self)
    router.middlewares.add(ErrorMiddleware(logger: store.logger))
    router.middlewares.add(ClientAddressMiddleware(trustedProxies: trustedProxies))
    // No QueryTextMiddleware: its 422 would be an empty 400 here; the sockets' gate checks the
    // same text and closes with 1008 and the reason (`SocketAccess`).
    LogSocket(store: store, broadcaster: broadcaster, access: access).addRoutes(to: router)
    EventsSocket(
        path: EventsSocket.eventsPath, feed: eventsFeed, status: statusFeed, access: access, idleTimeout: idleTimeout
    ).addRoutes(to: router)
    EventsSocket(
        path: EventsSocket.systemPath, feed: eventsFeed, status: statusFeed, access: access, idleTimeout: idleTimeout,
        fixedChannels: [.system]
    ).addRoutes(to: router)
    return router
}
