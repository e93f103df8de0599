import API
import Crypto
import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Pipeline
import PostgresNIO
import Synchronization
import Testing
import VigilTesting

/// A webhook receiver on loopback: it records every request and answers 503 to the first
/// `failing` ones, 200 after.
final class WebhookReceiver: Sendable {
    struct Received: Sendable {
        var headers: HTTPFields
        var body: [UInt8]
    }

    let received = Mutex<[Received]>([])
    /// How many requests get a 503 before the first 200 (`Int.max`: never a 200).
    let failing: Int

    init(failing: Int) { self.failing = failing }

    var all: [Received] { received.withLock { $0 } }

    /// Runs the receiver on an ephemeral port of 127.0.0.1 for the time of `body`.
    static func with(
        failing: Int, _ body: @Sendable (WebhookReceiver, _ url: String) async throws -> Void
    ) async throws {
        let receiver = WebhookReceiver(failing: failing)
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            let bytes = try await request.body.collect(upTo: 1 << 20)
            let count = receiver.received.withLock {
                $0.append(Received(headers: request.headers, body: Array(buffer: bytes)))
                return $0.count
            }
            return Response(status: count <= receiver.failing ? .serviceUnavailable : .ok)
        }
        let (ports, port) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                port.yield(channel.localAddress?.port ?? 0)
                port.finish()
            }, logger: Logger(label: "webhook-receiver", factory: { _ in SwiftLogNoOpLogHandler() }))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService(gracefulShutdownSignals: []) }
            var iterator = ports.makeAsyncIterator()
            let bound = try #require(await iterator.next())
            try await body(receiver, "http://127.0.0.1:\(bound)/hook")
            group.cancelAll()
        }
    }
}

/// Alerts of rules with the `webhook` channel POSTed to a loopback receiver: signed, retried,
/// parked after the last attempt.
@Suite struct WebhookTests {
    static let secret = "a-shared-secret-of-some-length"

    static func configure(_ url: String) -> @Sendable (inout ServerConfiguration) -> Void {
        { configuration in
            var webhooks = WebhookSettings(urls: [url], secret: Self.secret)
            webhooks.maxAttempts = 3
            webhooks.backoff = .milliseconds(100)
            webhooks.poll = .milliseconds(100)
            configuration.webhooks = webhooks
        }
    }

    /// The HMAC-SHA256 of `body` under the secret, as the receiver checks it.
    static func verifies(_ request: WebhookReceiver.Received) -> Bool {
        guard let header = request.headers[HTTPField.Name(WebhookSignature.header)!], header.hasPrefix("sha256="),
            let expected = Data(hex: String(header.dropFirst(7)))
        else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(
            expected, authenticating: request.body, using: SymmetricKey(data: Data(Self.secret.utf8)))
    }

    /// A rule for every event, the `webhook` channel when `webhook`, and one analyzed event.
    static func raise(
        _ client: any TestClientProtocol, _ store: EventStore, webhook: Bool = true
    ) async throws
        -> String
    {
        try await IngestAPITests.register(client, "front_door")
        let channels = webhook ? #"["webhook"]"# : "[]"
        _ = try await AlertsTests.rule(client, #"{"name": "all", "channels": \#(channels)}"#)
        try await AlertsTests.analyse(client, try await AlertsTests.event(client, count: 1), score: 80)
        try await AlertsTests.settle(store)
        return try #require(try await AlertsTests.alerts(client).first?["id"] as? String)
    }

    static func outbox(_ store: EventStore) async throws -> [(attempts: Int32, parked: Bool, error: String?)] {
        let rows = try await store.client.query(
            "SELECT attempts, parked_at IS NOT NULL, last_error FROM alert_webhooks", logger: store.logger)
        var all: [(Int32, Bool, String?)] = []
        for try await row in rows.decode((Int32, Bool, String?).self) { all.append(row) }
        return all
    }

    @Test("A webhook that fails twice is retried and delivered; every attempt is signed and verifies")
    func retriedAndDelivered() async throws {
        try await WebhookReceiver.with(failing: 2) { receiver, url in
            try await withApp(configure: Self.configure(url)) { store, client in
                let id = try await Self.raise(client, store)
                let alert = try await client.getEventually("/api/alerts/\(id)") {
                    $0["status"] as? String == "delivered"
                }
                #expect(alert["delivered_at"] is String)
                let requests = receiver.all
                #expect(requests.count == 3)
                #expect(requests.allSatisfy(Self.verifies))
                let bodies = try requests.map {
                    try #require(try JSONSerialization.jsonObject(with: Data($0.body)) as? [String: Any])
                }
                #expect(bodies.map { $0["attempt"] as? Int } == [1, 2, 3])
                #expect(Set(bodies.compactMap { $0["delivery_id"] as? String }).count == 1)
                #expect(bodies.allSatisfy { $0["type"] as? String == "alert.created" })
                #expect(bodies.allSatisfy { ($0["alert"] as? [String: Any])?["id"] as? String == id })
                #expect(requests.allSatisfy { $0.headers[HTTPField.Name("X-Vigil-Event")!] == "alert.created" })
                // A body changed in transit does not verify.
                var tampered = requests[0]
                tampered.body[tampered.body.count - 2] ^= 1
                #expect(!Self.verifies(tampered))
                try await waitUntil("the outbox is empty") { try await Self.outbox(store).isEmpty }
                #expect(try await IngestAPITests.count(store, type: AlertDelivered.type) == 1)
                // Acknowledging a delivered alert.
                #expect(try await client.send(.post, "/api/alerts/\(id)/acknowledge").status == .ok)
            }
        }
    }

    @Test("A webhook that keeps failing is parked after the last attempt; the alert stays pending")
    func parked() async throws {
        try await WebhookReceiver.with(failing: .max) { receiver, url in
            try await withApp(configure: Self.configure(url)) { store, client in
                let id = try await Self.raise(client, store)
                try await waitUntil("the delivery is parked") { try await Self.outbox(store).first?.parked == true }
                let row = try #require(try await Self.outbox(store).first)
                #expect(row.attempts == 3 && row.error == "HTTP 503")
                #expect(receiver.all.count == 3)
                #expect(try await IngestAPITests.count(store, type: AlertDeliveryFailed.type) == 1)
                #expect(try await IngestAPITests.count(store, type: AlertDelivered.type) == 0)
                let alert = try await client.getJSON("/api/alerts/\(id)")
                #expect(alert["status"] as? String == "pending" && alert["delivered_at"] is NSNull)
                // Nothing more is sent.
                try await Task.sleep(for: .milliseconds(500))
                #expect(receiver.all.count == 3)
            }
        }
    }

    @Test("Parked deliveries are the dead letters of dlq:alert_webhooks: listed, requeued (and delivered), audited")
    func deadLetters() async throws {
        try await WebhookReceiver.with(failing: 3) { receiver, url in
            let configure = Self.configure(url)
            try await withApp(configure: {
                configure(&$0)
                $0.redis = sharedRedisSettings()
                $0.redisPrefix = "test-\(UUID().uuidString.prefix(8)):"
            }) { store, client in
                let id = try await Self.raise(client, store)
                try await waitUntil("the delivery is parked") { try await Self.outbox(store).first?.parked == true }
                let stats = try await client.getJSON("/api/dlq/stats")
                #expect(stats["alert_webhooks_count"] as? Int == 1 && stats["total_count"] as? Int == 1)
                let jobs = try await client.getJSON("/api/dlq/jobs/dlq:alert_webhooks")
                let job = try #require((jobs["jobs"] as? [[String: Any]])?.first)
                #expect(job["error"] as? String == "HTTP 503" && job["attempt_count"] as? Int == 3)
                #expect(((job["original_job"] as? [String: Any])?["alert"] as? [String: Any])?["id"] as? String == id)
                #expect(job["queue_name"] as? String == "alert_webhooks")
                let requeued = try await client.send(.post, "/api/dlq/requeue-all/dlq:alert_webhooks")
                #expect(try json(requeued)["success"] as? Bool == true)
                let alert = try await client.getEventually("/api/alerts/\(id)") {
                    $0["status"] as? String == "delivered"
                }
                #expect(alert["delivered_at"] is String)
                #expect(receiver.all.count == 4 && receiver.all.allSatisfy(Self.verifies))
                #expect(try await Self.outbox(store).isEmpty)
                let empty = try await client.send(.post, "/api/dlq/requeue/dlq:alert_webhooks")
                #expect(try json(empty)["success"] as? Bool == false)
                #expect(try await client.send(.delete, "/api/dlq/dlq:alert_webhooks").status == .ok)
                try await waitUntil("the requeue is in the audit trail") {
                    try await client.getJSON("/api/audit?action=dlq_requeued&resource_id=dlq:alert_webhooks")["count"]
                        as? Int == 1
                }
            }
        }
    }

    @Test("A rule without the webhook channel sends nothing")
    func noChannelNoDelivery() async throws {
        try await WebhookReceiver.with(failing: 0) { receiver, url in
            try await withApp(configure: Self.configure(url)) { store, client in
                _ = try await Self.raise(client, store, webhook: false)
                #expect(try await Self.outbox(store).isEmpty)
                #expect(receiver.all.isEmpty)
            }
        }
    }

    @Test("Webhook settings: http(s) URLs and a secret of 16 characters or more")
    func settings() throws {
        #expect(throws: WebhookConfigurationError.self) {
            try WebhookSettings.validated(urls: ["ftp://example.com/x"], secret: Self.secret)
        }
        #expect(throws: WebhookConfigurationError.self) {
            try WebhookSettings.validated(urls: ["http://127.0.0.1/x"], secret: "short")
        }
        #expect(throws: WebhookConfigurationError.self) {
            try WebhookSettings.validated(urls: ["http://127.0.0.1/x"], secret: nil)
        }
        #expect(
            try WebhookSettings.validated(urls: ["https://hooks.example.com/v"], secret: Self.secret).urls.count == 1)
    }
}

extension Data {
    /// Bytes from lower- or upper-case hex; nil when it isn't hex.
    init?(hex: String) {
        guard hex.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        self.init(bytes)
    }
}
