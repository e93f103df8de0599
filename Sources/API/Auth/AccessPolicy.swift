import Domain
import Foundation
import HTTPTypes
import Hummingbird

/// What a route needs when auth is on: nothing (health probes), or a permission that the key's
/// role must include (``Role/permissions``).
enum Access: Sendable, Equatable {
    case open
    case needs(Permission)
}

/// The one table of which route needs what. A route missing here needs `admin` (safe by
/// default), and `AccessPolicyTests` fails until it is added.
enum AccessPolicy {
    static let routes: [String: Access] = notificationRoutes.merging(
        [
            "GET /health": .open,
            // The contract is no secret.
            "GET /openapi.json": .open,
            "GET /docs": .open,
            "GET /ready": .open,
            "GET /api/system/health/live": .open,
            "GET /api/system/health/ready": .open,
            "GET /api/system/health": .needs(.read),
            "GET /api/system/health/websocket": .needs(.read),
            // The raw log carries every event's metadata (actors, client addresses): admin only.
            "GET /api/log": .needs(.admin),
            "GET /api/streams/{stream}": .needs(.admin),
            "GET /ws/log": .needs(.admin),
            "GET /ws/events": .needs(.read),
            "GET /ws/system": .needs(.read),
            "GET /api/projections": .needs(.read),
            "POST /api/projections/{name}/rebuild": .needs(.admin),
            "GET /api/projections/{name}/parked": .needs(.admin),
            "POST /api/projections/{name}/parked/retry": .needs(.admin),
            "GET /api/cameras": .needs(.read),
            "POST /api/cameras": .needs(.admin),
            "GET /api/cameras/{camera_id}": .needs(.read),
            "PATCH /api/cameras/{camera_id}": .needs(.admin),
            "DELETE /api/cameras/{camera_id}": .needs(.admin),
            "GET /api/detections": .needs(.read),
            "POST /api/detections": .needs(.ingest),
            "POST /api/detections/batch": .needs(.ingest),
            "GET /api/detections/{detection_id}": .needs(.read),
            "GET /api/events": .needs(.read),
            "GET /api/events/search": .needs(.read),
            "GET /api/events/stats": .needs(.read),
            "GET /api/events/export": .needs(.read),
            "GET /api/events/{event_id}": .needs(.read),
            "PATCH /api/events/{event_id}": .needs(.review),
            "GET /api/events/{event_id}/detections": .needs(.read),
            "GET /api/events/{event_id}/analyses": .needs(.read),
            "GET /api/events/{event_id}/history": .needs(.read),
            "POST /api/events/{event_id}/analysis": .needs(.ingest),
            "POST /api/events/{event_id}/reanalyse": .needs(.review),
            "GET /api/system/config": .needs(.read),
            "PATCH /api/system/config": .needs(.admin),
            "GET /api/system/severity": .needs(.read),
            "PUT /api/system/severity": .needs(.admin),
            "GET /api/system/severity/preview": .needs(.read),
            "GET /api/system/rate-limits": .needs(.read),
            "GET /api/system/websocket/events": .needs(.read),
            "PATCH /api/system/rate-limits": .needs(.admin),
            "POST /api/system/cleanup": .needs(.admin),
            "GET /api/system/cleanup/status": .needs(.read),
            "GET /api/analytics/detection-trends": .needs(.read),
            "GET /api/analytics/risk-history": .needs(.read),
            "GET /api/analytics/camera-uptime": .needs(.read),
            "GET /api/analytics/object-distribution": .needs(.read),
            "GET /api/analytics/risk-score-distribution": .needs(.read),
            "GET /api/analytics/risk-score-trends": .needs(.read),
            "GET /api/api-keys": .needs(.admin),
            "POST /api/api-keys": .needs(.admin),
            "GET /api/api-keys/{key_id}": .needs(.admin),
            "DELETE /api/api-keys/{key_id}": .needs(.admin),
            "GET /api/audit": .needs(.admin),
            "GET /api/audit/stats": .needs(.admin),
            "GET /api/audit/{audit_id}": .needs(.admin),
            "GET /api/alerts/rules": .needs(.read),
            "POST /api/alerts/rules": .needs(.admin),
            "GET /api/alerts/rules/{rule_id}": .needs(.read),
            "PUT /api/alerts/rules/{rule_id}": .needs(.admin),
            "DELETE /api/alerts/rules/{rule_id}": .needs(.admin),
            // Testing a rule changes nothing.
            "POST /api/alerts/rules/{rule_id}/test": .needs(.read),
            "GET /api/alerts": .needs(.read),
            "GET /api/alerts/{alert_id}": .needs(.read),
            "POST /api/alerts/{alert_id}/acknowledge": .needs(.review),
            "POST /api/alerts/{alert_id}/dismiss": .needs(.review),
            "GET /api/cameras/{camera_id}/zones": .needs(.read),
            "POST /api/cameras/{camera_id}/zones": .needs(.admin),
            "GET /api/cameras/{camera_id}/zones/{zone_id}": .needs(.read),
            "PUT /api/cameras/{camera_id}/zones/{zone_id}": .needs(.admin),
            "DELETE /api/cameras/{camera_id}/zones/{zone_id}": .needs(.admin),
            "GET /api/metrics": .needs(.read),
            "GET /api/system/stats": .needs(.read),
            "GET /api/system/storage": .needs(.read),
            "GET /api/system/telemetry": .needs(.read),
            "GET /api/system/pipeline-latency": .needs(.read),
            // Operational records carry errors, addresses and internals: admin reads them; any
            // key (a dashboard's browser) may send its own.
            "GET /api/logs": .needs(.admin),
            "GET /api/logs/stats": .needs(.admin),
            "GET /api/logs/{log_id}": .needs(.admin),
            "POST /api/logs/frontend": .needs(.read),
            "POST /api/logs/frontend/batch": .needs(.read),
            // Job payloads and the power to re-run or drop them: admin only.
            "GET /api/dlq/stats": .needs(.admin),
            "GET /api/dlq/jobs/{queue_name}": .needs(.admin),
            "POST /api/dlq/requeue/{queue_name}": .needs(.admin),
            "POST /api/dlq/requeue-all/{queue_name}": .needs(.admin),
            "DELETE /api/dlq/{queue_name}": .needs(.admin),
            "GET /api/entities": .needs(.read),
            "GET /api/entities/{entity_id}": .needs(.read),
            "GET /api/entities/{entity_id}/history": .needs(.read),
            // Re-identification workers report what they see.
            "POST /api/entities/sightings": .needs(.ingest),
            "PATCH /api/entities/{entity_id}": .needs(.review),
            "GET /api/notification/config": .needs(.read),
            // Sends a real request to each configured webhook.
            "POST /api/notification/test": .needs(.admin),
        ], uniquingKeysWith: { $1 })

    /// Both families of the notification preferences' routes: reading needs `read`, changing
    /// `admin` (they decide what every user is sent).
    static var notificationRoutes: [String: Access] {
        var routes: [String: Access] = [:]
        for family in notificationPreferenceFamilies {
            for path in ["", "/cameras", "/cameras/{camera_id}", "/quiet-hours", "/quiet-hours/{quiet_hours_id}"] {
                routes["GET \(family)\(path)"] = .needs(.read)
            }
            for route in [
                "PUT ", "PATCH ", "PUT /cameras/{camera_id}", "PATCH /cameras/{camera_id}", "POST /quiet-hours",
                "PUT /quiet-hours/{quiet_hours_id}", "DELETE /quiet-hours/{quiet_hours_id}",
            ] {
                let (method, path) = (route.prefix { $0 != " " }, route.drop { $0 != " " }.dropFirst())
                routes["\(method) \(family)\(path)"] = .needs(.admin)
            }
        }
        return routes
    }

    /// The write routes whose refusals the audit trail records, as what they would have done
    /// (their successes are recorded from the events they append).
    static let audited: [String: AuditedCommand] = [
        "PATCH /api/events/{event_id}": .init(action: "event_reviewed", resourceType: "event", idParameter: "event_id"),
        "POST /api/events/{event_id}/reanalyse": .init(
            action: "ai_reevaluated", resourceType: "event", idParameter: "event_id"),
        "POST /api/events/{event_id}/analysis": .init(
            action: "analysis_recorded", resourceType: "event", idParameter: "event_id"),
        "POST /api/detections": .init(action: "detection_recorded", resourceType: "detection"),
        "POST /api/detections/batch": .init(action: "detection_recorded", resourceType: "detection"),
        "PUT /api/system/severity": .init(
            action: "settings_changed", resourceType: "severity_thresholds", singleton: "severity"),
        "PATCH /api/system/config": .init(action: "config_updated", resourceType: "system_config", singleton: "system"),
        "PATCH /api/system/rate-limits": .init(
            action: "settings_changed", resourceType: "rate_limits", singleton: "rate_limits"),
        "POST /api/system/cleanup": .init(action: "cleanup_executed", resourceType: "system", singleton: "retention"),
        "POST /api/cameras": .init(action: "camera_created", resourceType: "camera"),
        "PATCH /api/cameras/{camera_id}": .init(
            action: "camera_updated", resourceType: "camera", idParameter: "camera_id"),
        "DELETE /api/cameras/{camera_id}": .init(
            action: "camera_deleted", resourceType: "camera", idParameter: "camera_id"),
        "POST /api/api-keys": .init(action: "api_key_created", resourceType: "api_key"),
        "DELETE /api/api-keys/{key_id}": .init(
            action: "api_key_revoked", resourceType: "api_key", idParameter: "key_id"),
        "POST /api/projections/{name}/rebuild": .init(
            action: "projection_rebuild_requested", resourceType: "projection", idParameter: "name"),
        "POST /api/projections/{name}/parked/retry": .init(
            action: "parked_events_retried", resourceType: "projection", idParameter: "name"),
        "POST /api/alerts/rules": .init(action: "alert_rule_created", resourceType: "alert_rule"),
        "PUT /api/alerts/rules/{rule_id}": .init(
            action: "alert_rule_updated", resourceType: "alert_rule", idParameter: "rule_id"),
        "DELETE /api/alerts/rules/{rule_id}": .init(
            action: "alert_rule_deleted", resourceType: "alert_rule", idParameter: "rule_id"),
        "POST /api/alerts/{alert_id}/acknowledge": .init(
            action: "alert_acknowledged", resourceType: "alert", idParameter: "alert_id"),
        "POST /api/alerts/{alert_id}/dismiss": .init(
            action: "alert_dismissed", resourceType: "alert", idParameter: "alert_id"),
        "POST /api/cameras/{camera_id}/zones": .init(action: "zone_created", resourceType: "zone"),
        "PUT /api/cameras/{camera_id}/zones/{zone_id}": .init(
            action: "zone_updated", resourceType: "zone", idParameter: "zone_id"),
        "DELETE /api/cameras/{camera_id}/zones/{zone_id}": .init(
            action: "zone_deleted", resourceType: "zone", idParameter: "zone_id"),
        "POST /api/dlq/requeue/{queue_name}": .init(
            action: "dlq_requeued", resourceType: "dlq", idParameter: "queue_name"),
        "POST /api/dlq/requeue-all/{queue_name}": .init(
            action: "dlq_requeued", resourceType: "dlq", idParameter: "queue_name"),
        "DELETE /api/dlq/{queue_name}": .init(action: "dlq_cleared", resourceType: "dlq", idParameter: "queue_name"),
        "POST /api/notification/test": .init(action: "notification_tested", resourceType: "notification"),
        "PATCH /api/entities/{entity_id}": .init(
            action: "entity_trust_changed", resourceType: "entity", idParameter: "entity_id"),
    ].merging(notificationAudits, uniquingKeysWith: { $1 })

    static var notificationAudits: [String: AuditedCommand] {
        var audited: [String: AuditedCommand] = [:]
        for family in notificationPreferenceFamilies {
            for method in ["PUT", "PATCH"] {
                audited["\(method) \(family)"] = .init(
                    action: "notification_preferences_updated", resourceType: "notification_preferences",
                    singleton: "global")
                audited["\(method) \(family)/cameras/{camera_id}"] = .init(
                    action: "camera_notification_updated", resourceType: "camera_notification",
                    idParameter: "camera_id")
            }
            audited["POST \(family)/quiet-hours"] = .init(action: "quiet_hours_created", resourceType: "quiet_hours")
            audited["PUT \(family)/quiet-hours/{quiet_hours_id}"] = .init(
                action: "quiet_hours_updated", resourceType: "quiet_hours", idParameter: "quiet_hours_id")
            audited["DELETE \(family)/quiet-hours/{quiet_hours_id}"] = .init(
                action: "quiet_hours_deleted", resourceType: "quiet_hours", idParameter: "quiet_hours_id")
        }
        return audited
    }

    /// What `method` on the route `path` (as the router names it, `/api/events/{event_id}`) needs.
    static func access(_ method: HTTPRequest.Method, _ path: String) -> Access {
        routes["\(method.rawValue) \(path)"] ?? .needs(.admin)
    }
}

/// With auth on, checks the request's key against ``AccessPolicy`` before anything else reads
/// it: `401` when it is missing or opens nothing, `403` when its role lacks the route's
/// permission. The key is taken from `X-API-Key`, else `?api_key=`, else (WebSockets)
/// `Sec-WebSocket-Protocol: api-key.<key>`. The handler runs as the key's ``Principal``.
struct AuthMiddleware<Context: RequestContext>: RouterMiddleware {
    /// nil: auth is off, every route is open and every actor `anonymous`.
    let directory: KeyDirectory?
    /// Counts each key's requests (nil: not counted).
    let usage: KeyUsage?
    /// Records the refusals of write routes in the log.
    let rejections: RejectionRecorder

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        guard let directory else { return try await next(request, context) }
        let path = context.endpointPath ?? request.uri.path
        guard case .needs(let permission) = AccessPolicy.access(request.method, path) else {
            return try await next(request, context)
        }
        guard let presented = Self.presentedKey(request) else {
            throw await refuse(.unauthorized, "Missing API key: send it in the X-API-Key header", request, context)
        }
        guard let principal = try await directory.principal(for: presented) else {
            throw await refuse(.unauthorized, "Invalid API key", request, context)
        }
        let allowed = principal.role.allows(permission)
        usage?.record(principal.name, refused: !allowed)
        guard allowed else {
            throw await refuse(
                .forbidden,
                "API key '\(principal.name)' (role \(principal.role.rawValue)) may not \(request.method.rawValue) \(path)",
                request, context, actor: principal.name)
        }
        return try await Principal.$current.withValue(principal) { try await next(request, context) }
    }

    /// The refusal, recorded first (for a write route).
    private func refuse(
        _ status: HTTPResponse.Status, _ detail: String, _ request: Request, _ context: Context,
        actor: String = "anonymous"
    ) async -> APIError {
        await rejections.record(request, context: context, status: status, detail: detail, actor: actor)
        return APIError(status, detail)
    }

    static func presentedKey(_ request: Request) -> String? {
        if let key = request.headers[HTTPField.Name("X-API-Key")!], !key.isEmpty { return key }
        // Read as it came, not as form text (``QueryParameters``): a key holds no space, so a
        // `+` in one (a configured key may have it) is a `+`.
        if let key = request.uri.queryParameters["api_key"], !key.isEmpty { return String(key) }
        let protocols = request.headers[values: .secWebSocketProtocol].flatMap { $0.split(separator: ",") }
        for entry in protocols {
            let value = entry.trimmingCharacters(in: .whitespaces)
            if value.hasPrefix("api-key."), value.count > "api-key.".count { return String(value.dropFirst(8)) }
        }
        return nil
    }
}
