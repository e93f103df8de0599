import API
import ArgumentParser
import Domain
import EventStore
import Foundation
import Hummingbird
import Logging
import NIOCore
import Pipeline
import Projections
import Redis
import ServiceLifecycle
import UnixSignals

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP API.")

    @Option(help: "Address to listen on (VIGIL_HOST).")
    var host: String = Environment.string("VIGIL_HOST") ?? "127.0.0.1"

    @Option(help: "Port to listen on (VIGIL_PORT).")
    var port: Int = Environment.string("VIGIL_PORT").flatMap { Int($0) } ?? 8000

    @Option(help: "Run the projection runners in this process: on or off (VIGIL_PROJECTIONS).")
    var projections: String = Environment.string("VIGIL_PROJECTIONS") ?? "on"

    @Option(help: "The built-in analyzer on analysis_queue: heuristic or off (VIGIL_ANALYZER).")
    var analyzer: String = Environment.string("VIGIL_ANALYZER") ?? "heuristic"

    func run() async throws {
        let logger = Vigil.logger
        // VIGIL_PORT=abc once served on 8000, and 99999 on 34463 (the port wrapped).
        if let text = Environment.string("VIGIL_PORT"), Int(text) == nil {
            throw fail("VIGIL_PORT must be a port number from 1 to 65535: \(text)", code: 2)
        }
        guard (1...65_535).contains(port) else {
            throw fail("--port (VIGIL_PORT) must be from 1 to 65535: \(port)", code: 2)
        }
        guard ["on", "off"].contains(projections) else {
            throw fail("--projections (VIGIL_PROJECTIONS) must be on or off, not '\(projections)'", code: 2)
        }
        guard ["heuristic", "off"].contains(analyzer) else {
            throw fail("--analyzer (VIGIL_ANALYZER) must be heuristic or off, not '\(analyzer)'", code: 2)
        }
        let settings = try PostgresSettings.fromEnvironment()
        try await requireMigrated(settings, logger: logger)
        var configuration = ServerConfiguration(host: host, port: port, postgres: settings)
        configuration.runProjections = projections == "on"
        configuration.redis = try RedisSettings.fromEnvironment()
        configuration.redisPrefix = Environment.string("VIGIL_REDIS_PREFIX") ?? ""
        if let milliseconds = try Environment.positive("VIGIL_CACHE_TIMEOUT_MS", "milliseconds") {
            configuration.cacheTimeout = .milliseconds(milliseconds)
        }
        if let seconds = try Environment.positive("VIGIL_READ_YOUR_WRITES_TIMEOUT_SECONDS", "seconds") {
            configuration.readYourWritesTimeout = .seconds(seconds)
        }
        configuration.runHeuristicAnalyzer = analyzer == "heuristic"
        if let seconds = try Environment.positive("VIGIL_ANALYSIS_TIMEOUT_SECONDS", "seconds") {
            configuration.analysisTimeout = .seconds(seconds)
        }
        configuration.workerKey = Environment.string("VIGIL_WORKER_KEY")
        switch TrustedProxies.parse(Environment.string("VIGIL_TRUSTED_PROXIES") ?? "") {
        case .success(let proxies): configuration.trustedProxies = proxies
        case .failure(let error): throw fail("\(error)", code: 2)
        }
        configuration.adminKey = Environment.string("VIGIL_ADMIN_KEY")
        switch Environment.string("VIGIL_AUTH") {
        case nil: break
        case "on": configuration.auth = true
        case "off": configuration.auth = false
        case let other?: throw fail("VIGIL_AUTH must be on or off, not \(other)", code: 2)
        }
        if let seconds = try Environment.positive("VIGIL_RATE_LIMIT_WINDOW_SECONDS", "seconds") {
            configuration.rateLimitWindow = .seconds(seconds)
        }
        if let milliseconds = try Environment.positive("VIGIL_RATE_LIMIT_TIMEOUT_MS", "milliseconds") {
            configuration.rateLimitTimeout = .milliseconds(milliseconds)
        }
        switch Environment.string("VIGIL_RATE_LIMIT_FAILURE") {
        case nil, "open": configuration.rateLimitFailClosed = false
        case "closed": configuration.rateLimitFailClosed = true
        case let other?: throw fail("VIGIL_RATE_LIMIT_FAILURE must be open or closed, not \(other)", code: 2)
        }
        if let seconds = try Environment.positive("VIGIL_KEY_CACHE_SECONDS", "seconds") {
            configuration.keyCacheTTL = .seconds(seconds)
        }
        if let seconds = try Environment.positive("VIGIL_KEY_USAGE_SAVE_SECONDS", "seconds") {
            configuration.keyUsageInterval = .seconds(seconds)
        }
        if let events = try Environment.positive("VIGIL_WS_RING", "events") { configuration.logSocketRing = events }
        if let seconds = try Environment.positive("VIGIL_WS_IDLE_SECONDS", "seconds") {
            configuration.webSocketIdleTimeout = .seconds(seconds)
        }
        if let seconds = try Environment.positive("VIGIL_WS_SYSTEM_SECONDS", "seconds") {
            configuration.systemStatusInterval = .seconds(seconds)
        }
        if let messages = try Environment.positive("VIGIL_WS_BUFFER", "messages") {
            configuration.logSocketBuffer = messages
        }
        if configuration.isAuthOn && configuration.adminKey == nil {
            logger.warning("auth is on without VIGIL_ADMIN_KEY: only keys issued earlier open the API")
        } else if !configuration.isAuthOn && (configuration.adminKey != nil || configuration.workerKey != nil) {
            logger.warning("VIGIL_AUTH=off: every route is open, VIGIL_ADMIN_KEY and VIGIL_WORKER_KEY are ignored")
        }
        if let seconds = try Environment.positive("VIGIL_HTTP_IDLE_TIMEOUT_SECONDS", "seconds") {
            configuration.httpIdleTimeout = .seconds(seconds)
        }
        let poison = Environment.string("VIGIL_POISON_EVENTS") ?? "park"
        guard let policy = ProjectionRunner.PoisonPolicy(rawValue: poison) else {
            throw fail("VIGIL_POISON_EVENTS must be park or stop", code: 2)
        }
        configuration.projectionOptions.poisonPolicy = policy
        do {
            configuration.eventTimes = try EventTimeWindow.fromEnvironment(ProcessInfo.processInfo.environment)
        } catch {
            throw fail("\(error)", code: 2)
        }
        switch Environment.string("VIGIL_LOG_RECORD_LEVEL")?.lowercased() {
        case nil: break
        case "off": configuration.logRecordLevel = nil
        case let text?:
            guard let level = Logger.Level(rawValue: text) else {
                throw fail(
                    "VIGIL_LOG_RECORD_LEVEL must be off, trace, debug, info, notice, warning, error or critical",
                    code: 2)
            }
            configuration.logRecordLevel = level
        }
        if let days = try Environment.positive("VIGIL_LOG_RETENTION_DAYS", "days") {
            configuration.logRetention = .seconds(days * 86_400)
        }
        configuration.archiveDirectory = Environment.string("VIGIL_ARCHIVE_DIR")
        if let urls = Environment.string("VIGIL_WEBHOOK_URLS") {
            let list = urls.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            do {
                var webhooks = try WebhookSettings.validated(
                    urls: list, secret: Environment.string("VIGIL_WEBHOOK_SECRET"))
                if let attempts = try Environment.positive("VIGIL_WEBHOOK_MAX_ATTEMPTS", "attempts") {
                    webhooks.maxAttempts = attempts
                }
                configuration.webhooks = webhooks
            } catch {
                throw fail("\(error)", code: 2)
            }
        }
        if let window = try Environment.positive("VIGIL_BATCH_WINDOW_SECONDS", "seconds") {
            configuration.settings.config.batchWindowSeconds = window
        }
        if let idle = try Environment.positive("VIGIL_BATCH_IDLE_TIMEOUT_SECONDS", "seconds") {
            configuration.settings.config.batchIdleTimeoutSeconds = idle
        }
        let app = try Result { try buildApplication(configuration, logger: logger) }
            .mapError { fail("\($0)", code: 2) }.get()
        // Shutdown is bounded whatever the dependencies do (PostgreSQL down, a stuck client):
        // 7 s to finish gracefully, then tasks are cancelled, and after 3 s more the process
        // exits anyway.
        var group = ServiceGroupConfiguration(
            services: [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = .seconds(7)
        group.maximumCancellationDuration = .seconds(3)
        do {
            try await ServiceGroup(configuration: group).run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            // NIO's own words named neither the address nor the port.
            throw fail("cannot listen on \(host):\(port): another process is listening there (\(error))")
        }
    }
}

enum Environment {
    static func string(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
        return value
    }

    /// The positive whole number (of `unit`) in `name`, nil when unset; anything else exits 2.
    static func positive(_ name: String, _ unit: String) throws -> Int? {
        guard let text = string(name) else { return nil }
        guard let value = Int(text), value > 0 else {
            throw fail("\(name) must be a positive number of \(unit)", code: 2)
        }
        return value
    }
}

/// Exits with a clear message when PostgreSQL can't be reached or the database lacks migrations.
func requireMigrated(_ settings: PostgresSettings, logger: Logger) async throws {
    let pending: [String]
    do {
        pending = try await settings.withRunningClient(logger: logger) { client in
            try await Migrator.store().pending(client: client, logger: logger)
        }
    } catch let error as DatabaseUnreachable {
        throw fail(error.description)
    } catch {
        throw fail(
            "cannot read the migrations of \(settings.database) on \(settings.host):\(settings.port): "
                + String(reflecting: error)
        )
    }
    guard pending.isEmpty else {
        throw fail(
            "database \(settings.database) is not migrated (pending: \(pending.joined(separator: ", "))); "
                + "run `vigil migrate` first",
            code: 2
        )
    }
}
