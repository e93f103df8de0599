import Domain
import EventStore
import Foundation
import Hummingbird
import Projections

/// `/api/alerts`: the alerts the rule engine raised (list, one), and the two things a person
/// does with one: acknowledge it (from pending or delivered) and dismiss it (from anything but
/// dismissed). An alert is a stream of its own (`alert-<id>`); a change is appended at the
/// version its status was read at, so a delivery racing an acknowledgement is decided again.
struct AlertsController<Context: RequestContext> {
    let alerts: AlertsReadModel
    let store: EventStore
    let appender: GroupCommitAppender
    let readYourWrites: ReadYourWrites

    func addRoutes(to router: Router<Context>) {
        let group = router.group("/api/alerts")
        group.get(use: list)
        group.get("{alert_id}", use: get)
        group.post("{alert_id}/acknowledge", use: acknowledge)
        group.post("{alert_id}/dismiss", use: dismiss)
    }

    /// `status`, `severity`, `rule_id`, `camera_id`, `event_id`, `start_date`/`end_date` (on
    /// `created_at`); newest first, cursor-paginated under `alerts`.
    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let page = try PageRequest(query, idIsInteger: false)
        let (start, end) = try query.dateRange()
        var eventId: Int64?
        if query.string("event_id") != nil {
            eventId = Int64(try query.integer("event_id", default: 0, in: 1...Int(Int64.max)))
        }
        let filter = AlertsReadModel.Filter(
            status: try query.choice("status", AlertStatus.self)?.rawValue,
            severity: try query.choice("severity", AlertSeverity.self)?.rawValue,
            ruleId: query.string("rule_id"), cameraId: query.string("camera_id"), eventId: eventId, since: start,
            until: end)
        return page.response(try await alerts.list(filter, page: page.bounds), key: "alerts")
    }

    @Sendable func get(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.text("alert_id")
        return try itemResponse(try await alerts.item(id), notFound: "Alert \(id) not found")
    }

    @Sendable func acknowledge(_ request: Request, context: Context) async throws -> Response {
        try await change(request, context: context, verb: "acknowledged", allowed: \.canAcknowledge) {
            AlertAcknowledged(id: $0.id, previousStatus: $0.status, acknowledgedAt: Date())
        }
    }

    @Sendable func dismiss(_ request: Request, context: Context) async throws -> Response {
        try await change(request, context: context, verb: "dismissed", allowed: \.canDismiss) {
            AlertDismissed(id: $0.id, previousStatus: $0.status, dismissedAt: Date())
        }
    }

    /// Appends `event(alert)` when the alert's status allows it (else 409; 404 when there is no
    /// such alert, or its camera was removed), and answers with the alert as the read model then has it. A write that
    /// meets a newer version (a delivery just recorded) reads the status again.
    private func change(
        _ request: Request, context: Context, verb: String, allowed: KeyPath<AlertStatus, Bool>,
        event: (Alert) -> some DomainEvent
    ) async throws -> Response {
        let id = try context.parameters.text("alert_id")
        // Its camera was removed: gone from the list and from `GET`, so not to be changed either.
        guard try await !alerts.isHidden(id) else { throw APIError.notFound("Alert \(id) not found") }
        for _ in 1...3 {
            let (alert, version) = try await store.folded(Alert.stream(id), Alert.fold)
            guard let alert else { throw APIError.notFound("Alert \(id) not found") }
            guard alert.status[keyPath: allowed] else {
                throw APIError.conflict("Alert \(id) is \(alert.status.rawValue) and can't be \(verb)")
            }
            do {
                try await appender.appendCommand(
                    event(alert), expected: .exact(version), request: request, readYourWrites: readYourWrites,
                    waitFor: ["alerts"], conflict: AlertMoved())
                return try itemResponse(try await alerts.item(id), notFound: "Alert \(id) not found")
            } catch is AlertMoved {
                continue  // the third time too: the 409 below, never the error itself (a 500)
            }
        }
        throw APIError.conflict("Alert \(id) was changed by another request; retry")
    }
}

/// An alert's stream moved on between reading its status and appending a change.
private struct AlertMoved: Error {}
