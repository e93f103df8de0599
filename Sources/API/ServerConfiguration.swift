import Domain
import EventStore
import Foundation
import Logging
import Pipeline
import PostgresNIO
import Projections
import Redis

/// How `vigil serve` runs.
public struct ServerConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8000
    public var postgres: PostgresSettings
    /// Run the read models' projection runners in this process (each projection runs in one
    /// process of the cluster at a time; the others stand by).
    public var runProjections = true
    public var projectionOptions = ProjectionRunner.Options()
    /// Redis (the analysis queue); nil runs without it: batches still close, no jobs are
    /// published until a process with Redis runs the publisher.
    public var redis: RedisSettings?
    /// Prefix of every Redis key (`VIGIL_REDIS_PREFIX`).
    public var redisPrefix = ""
    /// How long a response-cache read or write may wait for Redis before the answer is computed
    /// without it (`VIGIL_CACHE_TIMEOUT_MS`).
    public var cacheTimeout: Duration = .milliseconds(50)
    /// How long a command waits for its read models to apply its write before answering 202
    /// (`VIGIL_READ_YOUR_WRITES_TIMEOUT_SECONDS`).
    public var readYourWritesTimeout: Duration = .seconds(10)
    /// How often a command waiting for its read models looks at their checkpoints when no
    /// runner's commit has been notified (a lost notification's worst case).
    public var readYourWritesPoll: Duration = .milliseconds(100)
    /// Peers whose `X-Forwarded-For` names the client (`VIGIL_TRUSTED_PROXIES`); from anyone
    /// else the header is ignored and the socket's address is the client's.
    public var trustedProxies = TrustedProxies.none
    /// Run the built-in heuristic analyzer on `analysis_queue` (`VIGIL_ANALYZER=heuristic`);
    /// off when an external (LLM) worker takes the jobs.
    public var runHeuristicAnalyzer = true
    /// How long a published analysis job may wait for its analysis before the publisher pushes
    /// it again (a job Redis lost; `VIGIL_ANALYSIS_TIMEOUT_SECONDS`).
    public var analysisTimeout: Duration = .seconds(600)
    /// Where alerts of rules with the `webhook` channel are POSTed (nil: nowhere; the rule
    /// engine then writes no deliveries).
    public var webhooks: WebhookSettings?
    /// Where retention (`POST /api/system/cleanup`) writes its archive segments
    /// (`VIGIL_ARCHIVE_DIR`); nil: a cleanup may only be a dry run, since nothing leaves the
    /// log without an archive.
    public var archiveDirectory: String?
    public var analyzerOptions = HeuristicAnalyzerWorker.Options()
    /// The configuration and severity thresholds before anyone changes them through the API
    /// (`PATCH /api/system/config`, `PUT /api/system/severity`): the seeds' defaults, with the
    /// batch window and idle time from the environment.
    public var settings = SystemSettings.defaults
    /// The batch aggregator's wall clock (tests move it forward).
    public var batchClock: @Sendable () -> Date = { Date() }
    /// Whether every route but `/health` and `/ready` needs an API key of a sufficient role
    /// (`VIGIL_AUTH`, `on` or `off`); nil: on when `adminKey` or `workerKey` is set.
    public var auth: Bool?
    /// The bootstrap key of role `admin`, actor `admin` (`VIGIL_ADMIN_KEY`).
    public var adminKey: String?
    /// A shared key of role `worker`, actor `worker` (`VIGIL_WORKER_KEY`).
    public var workerKey: String?
    /// How long an instance may keep answering for an issued key it looked up (found, or not):
    /// the longest a revocation through another instance takes to reach this one.
    public var keyCacheTTL: Duration = .seconds(5)
    /// How often the keys' usage counters are saved (`VIGIL_KEY_USAGE_SAVE_SECONDS`): a crash
    /// loses at most this long of counts.
    public var keyUsageInterval: Duration = .seconds(5)
    /// How many recent events the `/ws/log` broadcaster keeps for sockets joining or falling
    /// back (`VIGIL_WS_RING`), and how many messages a socket may have waiting before it drops
    /// back to reading the table (`VIGIL_WS_BUFFER`).
    public var logSocketRing = 10_000
    public var logSocketBuffer = 1024
    /// How long a `/ws/events` client may stay silent before it is closed (`VIGIL_WS_IDLE_SECONDS`).
    public var webSocketIdleTimeout: Duration = .seconds(300)
    /// How often `/ws/system` sends the system status (`VIGIL_WS_SYSTEM_SECONDS`).
    public var systemStatusInterval: Duration = .seconds(5)

    /// How many refused commands per actor and client address are recorded in the log at once,
    /// and how often one more may be: the rest are counted in the next record.
    public var refusalBurst = 20
    public var refusalInterval: Duration = .seconds(3)

    /// The rate limiter's window (`VIGIL_RATE_LIMIT_WINDOW_SECONDS`; the limits themselves are
    /// system settings, `/api/system/rate-limits`).
    public var rateLimitWindow: Duration = .seconds(60)
    /// How long a request waits for the rate limiter's Redis (`VIGIL_RATE_LIMIT_TIMEOUT_MS`).
    public var rateLimitTimeout: Duration = .milliseconds(50)
    /// When Redis doesn't answer in time: refuse (503) instead of letting requests pass
    /// (`VIGIL_RATE_LIMIT_FAILURE=closed`; `open` by default).
    public var rateLimitFailClosed = false

    /// How many probes in a row that got no answer within 3 s (PostgreSQL hung, or a machine
    /// too starved to tell) make the database count as down; a refused or failed probe counts
    /// at once (two in a row).
    public var probeTimeoutsToGoDown = 5

    /// Whether auth is on, as configured or by default.
    public var isAuthOn: Bool { auth ?? (adminKey != nil || workerKey != nil) }
    /// How long a client connection may stay silent, idle or mid-request, before it is closed
    /// (`VIGIL_HTTP_IDLE_TIMEOUT_SECONDS`).
    public var httpIdleTimeout: Duration = .seconds(30)
    /// When a client-supplied event time (`detected_at`) may be: `VIGIL_MIN_EVENT_TIME`,
    /// `VIGIL_MAX_FUTURE_SECONDS`.
    public var eventTimes = EventTimeWindow.standard
    /// The server's own log records at or above this level are kept in `operational_logs` for
    /// `/api/logs` (`VIGIL_LOG_RECORD_LEVEL`; nil: none are).
    public var logRecordLevel: Logger.Level? = .warning
    /// How long operational log records are kept (`VIGIL_LOG_RETENTION_DAYS`).
    public var logRetention: Duration = .seconds(7 * 86_400)

    public init(host: String = "127.0.0.1", port: Int = 8000, postgres: PostgresSettings) {
        self.host = host
        self.port = port
        self.postgres = postgres
    }
}

/// The server can't run as configured.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
}
