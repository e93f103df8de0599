import AsyncHTTPClient
import Crypto
import Domain
import EventStore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import Projections
import ServiceLifecycle

/// Where alerts of rules with the `webhook` channel are POSTed, and how.
public struct WebhookSettings: Sendable, Hashable {
    /// Every alert goes to each of them (`VIGIL_WEBHOOK_URLS`, comma-separated).
    public var urls: [String]
    /// The HMAC-SHA256 key of `X-Vigil-Signature` (`VIGIL_WEBHOOK_SECRET`).
    public var secret: String
    /// How long one attempt may take.
    public var timeout: Duration = .seconds(5)
    /// Attempts before a delivery is parked (`VIGIL_WEBHOOK_MAX_ATTEMPTS`).
    public var maxAttempts = 5
    /// The wait after the first failure; it doubles with each failure, up to `maxBackoff`.
    public var backoff: Duration = .seconds(1)
    public var maxBackoff: Duration = .seconds(60)
    /// How often the deliverer looks for due deliveries when nothing wakes it.
    public var poll: Duration = .milliseconds(500)

    public init(urls: [String], secret: String) {
        self.urls = urls
        self.secret = secret
    }

    /// Checks what an operator set: absolute http(s) URLs and a secret of 16 bytes or more.
    public static func validated(urls: [String], secret: String?) throws -> WebhookSettings {
        for url in urls {
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""),
                parsed.host?.isEmpty == false
            else {
                throw WebhookConfigurationError(description: "VIGIL_WEBHOOK_URLS: '\(url)' is not an http(s) URL")
            }
        }
        guard let secret, secret.utf8.count >= 16 else {
            throw WebhookConfigurationError(
                description: "VIGIL_WEBHOOK_URLS needs VIGIL_WEBHOOK_SECRET (16 characters or more): "
                    + "every webhook is signed with it")
        }
        return WebhookSettings(urls: urls, secret: secret)
    }

    /// The wait after `failures` failed attempts.
    func delay(after failures: Int) -> Duration {
        var wait = backoff
        for _ in 1..<max(failures, 1) where wait < maxBackoff { wait *= 2 }
        return min(wait, maxBackoff)
    }
}

public struct WebhookConfigurationError: Error, CustomStringConvertible {
    public var description: String
}

/// How a webhook is signed: `X-Vigil-Signature: sha256=<hex>`, the HMAC-SHA256 of the body's
/// exact bytes under the shared secret. A receiver computes the same over the bytes it got and
/// compares in constant time; the body carries `delivery_id` and `sent_at` against replays.
public enum WebhookSignature {
    public static let header = "X-Vigil-Signature"

    public static func sign(_ body: [UInt8], secret: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data(secret.utf8)))
        return "sha256=" + lowercaseHex(code)
    }
}

/// POSTs one signed request: `Content-Type: application/json`, `X-Vigil-Event`,
/// `X-Vigil-Delivery`, `X-Vigil-Signature`.
public struct WebhookSender: Sendable {
    let settings: WebhookSettings
    let client: HTTPClient

    public init(settings: WebhookSettings, client: HTTPClient = .shared) {
        self.settings = settings
        self.client = client
    }

    public struct Outcome: Sendable {
        /// The answer's status (nil: none came).
        public var status: Int?
        /// nil: delivered (a 2xx).
        public var failure: String?
    }

    public func post(_ body: [UInt8], to url: String, event: String, delivery: UUID) async -> Outcome {
        do {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "vigil-webhooks")
            request.headers.add(name: "X-Vigil-Event", value: event)
            request.headers.add(name: "X-Vigil-Delivery", value: delivery.uuidString.lowercased())
            request.headers.add(
                name: WebhookSignature.header, value: WebhookSignature.sign(body, secret: settings.secret))
            request.body = .bytes(ByteBuffer(bytes: body))
            let response = try await client.execute(
                request, timeout: .nanoseconds(settings.timeout.nanoseconds))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            let code = Int(response.status.code)
            return Outcome(status: code, failure: (200..<300).contains(code) ? nil : "HTTP \(code)")
        } catch {
            return Outcome(status: nil, failure: "\(error)")
        }
    }
}

/// One webhook delivery as the outbox (`alert_webhooks`) holds it.
struct WebhookDelivery: Sendable {
    var deliveryId: UUID
    var alertId: String
    var url: String
    /// The alert's JSON, as the rule engine wrote it.
    var alert: String
    /// Attempts made before this one.
    var attempts: Int
}

/// The outbox side, written by the rule engine in its transaction: one row per alert and URL.
enum AlertOutbox {
    /// The rows for `alert` (nothing when the rule has no `webhook` channel).
    static func enqueue(
        _ alerts: [AlertTriggered], urls: [String], on connection: PostgresConnection, logger: Logger
    ) async throws {
        var ids: [UUID] = []
        var alertIds: [String] = []
        var targets: [String] = []
        var bodies: [String] = []
        for alert in alerts where alert.channels.contains("webhook") {
            let json = String(decoding: try EventCoding.encoder.encode(alert), as: UTF8.self)
            for url in urls {
                ids.append(DeterministicID.uuid("webhook", alert.id, url))
                alertIds.append(alert.id)
                targets.append(url)
                bodies.append(json)
            }
        }
        guard !ids.isEmpty else { return }
        try await connection.query(
            """
            INSERT INTO alert_webhooks (delivery_id, alert_id, url, alert, attempts, next_attempt_at, created_at)
            SELECT u.id, u.alert_id, u.url, u.alert::jsonb, 0, now(), now()
            FROM unnest(\(ids)::uuid[], \(alertIds)::text[], \(targets)::text[], \(bodies)::text[])
                AS u(id, alert_id, url, alert)
            ON CONFLICT (delivery_id) DO NOTHING
            """, logger: logger)
    }
}

/// POSTs the alerts in the outbox to their webhooks: signed, retried with backoff, parked after
/// the last attempt; not at all when the notification preferences say so (quiet hours, off, a
/// risk filter, the camera's setting, checked when it is due): the row is dropped and
/// `AlertDeliverySuppressed` says why.
///
/// Each round claims the due deliveries (a lease: their next attempt is pushed out by twice the
/// timeout, in a short transaction with `SKIP LOCKED`, so several servers share the work),
/// sends them at once, then records each outcome in a transaction of its own: a 2xx deletes the
/// row and appends `AlertDelivered`; a failure counts the attempt and waits (1 s, 2 s, 4 s, … up
/// to a minute); the last failure parks the row (`parked_at`) and appends
/// `AlertDeliveryFailed`. A server that dies after sending and before recording sends again once
/// the lease runs out: a receiver sees a delivery at least once and can drop repeats by
/// `delivery_id`.
public struct WebhookDeliverer: Service {
    let settings: WebhookSettings
    let store: EventStore
    let logger: Logger
    let wake: ChangeSignal?
    let sender: WebhookSender
    let notifications: NotificationsReadModel
    let systemSettings: SystemSettingsReader

    /// `wake`: bumped when a runner commits (``LogNotifier/progress``), so a new alert goes out
    /// without waiting for the poll. `systemSettings`: the severity thresholds, for the risk
    /// level the preferences filter on.
    public init(
        settings: WebhookSettings, store: EventStore, systemSettings: SystemSettingsReader, wake: ChangeSignal? = nil,
        logger: Logger
    ) {
        self.settings = settings
        self.store = store
        self.wake = wake
        self.logger = logger
        self.sender = WebhookSender(settings: settings)
        self.notifications = NotificationsReadModel(database: ReadDatabase(client: store.client, logger: logger))
        self.systemSettings = systemSettings
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            // Said once when reading starts failing (PostgreSQL down) and once when it works
            // again, not at every poll; meanwhile it tries every 2 s.
            var failing = false
            while !Task.isCancelled {
                let seen = wake?.generation ?? 0
                var wait = settings.poll
                do {
                    let due = try await claim()
                    if failing {
                        failing = false
                        logger.info("webhook deliveries can be read again")
                    }
                    if !due.isEmpty {
                        await deliver(due)
                        continue
                    }
                } catch is CancellationError {
                    break
                } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42P01" {
                    // The server registers the read models' views as it starts: not there yet.
                    logger.debug("the webhook outbox is not registered yet")
                } catch {
                    if !failing {
                        logger.warning(
                            "webhook deliveries could not be read; trying again every 2 s",
                            metadata: ["error": "\(String(reflecting: error))"])
                    }
                    failing = true
                    wait = max(wait, .seconds(2))
                }
                if let wake, !failing {
                    await wake.wait(after: seen, timeout: wait)
                } else {
                    try? await Task.sleep(for: wait)
                }
            }
        }
    }

    /// Takes up to 32 due deliveries for this server (leased for twice the timeout).
    func claim() async throws -> [WebhookDelivery] {
        let lease = Double(settings.timeout.components.seconds * 2 + 1)
        let rows = try await store.client.guardedQuery(
            """
            UPDATE alert_webhooks SET next_attempt_at = now() + make_interval(secs => \(lease))
            WHERE delivery_id IN (
                SELECT delivery_id FROM alert_webhooks
                WHERE parked_at IS NULL AND next_attempt_at <= now()
                ORDER BY next_attempt_at LIMIT 32 FOR UPDATE SKIP LOCKED)
            RETURNING delivery_id, alert_id, url, alert::text, attempts
            """, logger: logger)
        var due: [WebhookDelivery] = []
        for try await (id, alert, url, json, attempts) in rows.decode((UUID, String, String, String, Int32).self) {
            due.append(
                WebhookDelivery(deliveryId: id, alertId: alert, url: url, alert: json, attempts: Int(attempts)))
        }
        return due
    }

    /// The body of an attempt: `{"type": "alert.created", "delivery_id", "attempt", "sent_at",
    /// "alert": {…}}`.
    static func body(_ delivery: WebhookDelivery, attempt: Int, at date: Date) -> String {
        """
        {"type":"alert.created","delivery_id":"\(delivery.deliveryId.uuidString.lowercased())",\
        "attempt":\(attempt),"sent_at":"\(EventCoding.timestamp(date))","alert":\(delivery.alert)}
        """
    }

    /// What every delivery of a round is checked against, read once for the round.
    struct Preferences {
        var preferences: NotificationPreferences
        var quietHours: [QuietHours]
        var thresholds: SeverityThresholds
    }

    /// Sends a round's deliveries at once. Without the preferences none is sent: their leases
    /// run out and the next round takes them again.
    func deliver(_ due: [WebhookDelivery]) async {
        let round: Preferences
        do {
            round = Preferences(
                preferences: try await notifications.preferences(), quietHours: try await notifications.allQuietHours(),
                thresholds: try await systemSettings.current().thresholds)
        } catch {
            logger.warning(
                "the notification preferences could not be read; the deliveries are tried again later",
                metadata: ["deliveries": "\(due.count)", "error": "\(String(reflecting: error))"])
            return
        }
        await withTaskGroup(of: Void.self) { group in
            for delivery in due {
                group.addTask { await self.deliver(delivery, round) }
            }
        }
    }

    func deliver(_ delivery: WebhookDelivery, _ round: Preferences) async {
        let attempt = delivery.attempts + 1
        do {
            if let reason = try await suppression(delivery, round) {
                try await record(delivery, attempt: attempt, outcome: .suppressed(reason))
                return
            }
        } catch {
            logger.warning(
                "the notification preferences could not be read; the delivery is tried again later",
                metadata: ["delivery_id": "\(delivery.deliveryId)", "error": "\(String(reflecting: error))"])
            return
        }
        let body = Array(Self.body(delivery, attempt: attempt, at: Date()).utf8)
        let sent = await sender.post(body, to: delivery.url, event: "alert.created", delivery: delivery.deliveryId)
        do {
            try await record(delivery, attempt: attempt, outcome: sent.failure.map { .failed($0) } ?? .delivered)
        } catch {
            logger.warning(
                "a webhook delivery's outcome could not be recorded; it is sent again when its lease runs out",
                metadata: ["delivery_id": "\(delivery.deliveryId)", "error": "\(error)"])
        }
    }

    /// Why the preferences say not to send it now (nil: send): off, filtered by risk level,
    /// the camera's setting, quiet hours (``NotificationPolicy``).
    func suppression(_ delivery: WebhookDelivery, _ round: Preferences) async throws -> String? {
        let alert = try AlertTriggered.decode(delivery.alert)
        return NotificationPolicy.suppression(
            level: round.thresholds.level(alert.riskScore), score: alert.riskScore, at: Date(),
            preferences: round.preferences, camera: try await notifications.cameraSetting(alert.cameraId),
            quietHours: round.quietHours)
    }

    enum Outcome {
        case delivered
        case failed(String)
        case suppressed(String)
    }

    /// Deletes, reschedules or parks the row, and appends what happened to the alert's stream.
    func record(_ delivery: WebhookDelivery, attempt: Int, outcome: Outcome) async throws {
        let now = Date()
        let metadata = EventMetadata(actor: SystemActor.webhookDeliverer)
        try await store.client.withOpenConnection { connection in
            try await connection.inTransaction(logger: logger) { connection in
                let event: NewEvent?
                switch outcome {
                case .failed(let failure) where attempt >= settings.maxAttempts:
                    try await connection.query(
                        """
                        UPDATE alert_webhooks SET attempts = \(Int32(attempt)), parked_at = now(), last_error = \(failure)
                        WHERE delivery_id = \(delivery.deliveryId)
                        """, logger: logger)
                    logger.error(
                        "a webhook delivery failed its last attempt and is parked",
                        metadata: ["alert_id": "\(delivery.alertId)", "url": "\(delivery.url)", "error": "\(failure)"])
                    event = try NewEvent(
                        AlertDeliveryFailed(
                            id: delivery.alertId, channel: "webhook", target: delivery.url, attempts: attempt,
                            error: failure, failedAt: now), metadata: metadata)
                case .failed(let failure):
                    let wait = Double(settings.delay(after: attempt).nanoseconds) / 1e9
                    try await connection.query(
                        """
                        UPDATE alert_webhooks SET attempts = \(Int32(attempt)), last_error = \(failure),
                               next_attempt_at = now() + make_interval(secs => \(wait))
                        WHERE delivery_id = \(delivery.deliveryId)
                        """, logger: logger)
                    event = nil
                case .delivered:
                    try await connection.query(
                        "DELETE FROM alert_webhooks WHERE delivery_id = \(delivery.deliveryId)", logger: logger)
                    event = try NewEvent(
                        AlertDelivered(
                            id: delivery.alertId, channel: "webhook", target: delivery.url, attempts: attempt,
                            deliveredAt: now), metadata: metadata)
                case .suppressed(let reason):
                    try await connection.query(
                        "DELETE FROM alert_webhooks WHERE delivery_id = \(delivery.deliveryId)", logger: logger)
                    event = try NewEvent(
                        AlertDeliverySuppressed(
                            id: delivery.alertId, channel: "webhook", target: delivery.url, reason: reason,
                            suppressedAt: now), metadata: metadata)
                }
                if let event {
                    let transaction = EventStoreTransaction(connection: connection, logger: logger)
                    for result in try await transaction.appendBatch([
                        AppendRequest(stream: Alert.stream(delivery.alertId), events: [event])
                    ]) { _ = try result.get() }
                }
            }
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
