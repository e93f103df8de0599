import Domain
import EventStore
import Foundation
import Hummingbird
import Pipeline

/// `GET /api/notification/config` (which channels are configured, no secrets) and
/// `POST /api/notification/test` (a signed test request to each webhook, now). Vigil delivers
/// alerts by webhook only: email and push are never configured.
struct NotificationController<Context: RequestContext> {
    let webhooks: WebhookSettings?
    let appender: GroupCommitAppender
    let readYourWrites: ReadYourWrites

    func addRoutes(to router: Router<Context>) {
        router.get("/api/notification/config", use: config)
        router.post("/api/notification/test", use: test)
    }

    @Sendable func config(_ request: Request, context: Context) async throws -> Response {
        var writer = JSONWriter()
        writer.object { object in
            object.field("notification_enabled", webhooks != nil)
            object.field("email_configured", false)
            object.field("webhook_configured", webhooks != nil)
            object.field("push_configured", false)
            object.array("available_channels") { channels in if webhooks != nil { channels.string("webhook") } }
            object.field("webhook_count", webhooks?.urls.count ?? 0)
            object.field("webhook_max_attempts", Int64(webhooks?.maxAttempts ?? 0))
            object.field("smtp_host", nil as String?)
            object.field("smtp_port", nil as Int64?)
            object.field("smtp_from_address", nil as String?)
        }
        return writer.response()
    }

    /// `{"channel": "webhook"}` → `{channel, success, results: [{url, success, status_code,
    /// error}], tested_at}`; a channel that isn't configured is a 400.
    @Sendable func test(_ request: Request, context: Context) async throws -> Response {
        var body = try await JSONBody.parse(request, context: context)
        let channel = body.choice("channel", Channel.self)
        _ = body.stringList("email_recipients", count: 0...20, length: 3...254)
        if !body.has("channel") { body.fail("channel", "Field required", "missing") }
        try body.validate()
        guard channel == .webhook, let webhooks else {
            throw APIError.badRequest(
                "The \(channel?.rawValue ?? "") channel is not configured"
                    + (channel == .webhook ? " (VIGIL_WEBHOOK_URLS)" : ": Vigil delivers alerts by webhook"))
        }
        let sender = WebhookSender(settings: webhooks)
        let now = Date()
        let delivery = UUID.random()
        let payload = """
            {"type":"notification.test","delivery_id":"\(delivery.uuidString.lowercased())",\
            "sent_at":"\(EventCoding.timestamp(now))","message":"A test notification from Vigil"}
            """
        var results: [(String, WebhookSender.Outcome)] = []
        for url in webhooks.urls {
            results.append(
                (url, await sender.post(Array(payload.utf8), to: url, event: "notification.test", delivery: delivery)))
        }
        let succeeded = results.filter { $0.1.failure == nil }.count
        try await appender.appendCommand(
            NotificationTested(channel: "webhook", targets: results.count, succeeded: succeeded, testedAt: now),
            expected: .any, request: request, readYourWrites: readYourWrites, waitFor: [],
            conflict: APIError.conflict("unreachable"))
        var writer = JSONWriter()
        writer.object { object in
            object.field("channel", "webhook")
            object.field("success", succeeded == results.count)
            object.array("results") { array in
                for (url, outcome) in results {
                    array.object { item in
                        item.field("url", url)
                        item.field("success", outcome.failure == nil)
                        item.field("status_code", outcome.status.map(Int64.init))
                        item.field("error", outcome.failure)
                    }
                }
            }
            object.field("tested_at", EventCoding.timestamp(now))
        }
        return writer.response()
    }

    enum Channel: String, CaseIterable {
        case email, webhook, push
    }
}
