import Domain
import Foundation
import Hummingbird
import Projections

/// `/api/audit`: the audit trail (list, stats, one entry), read from the `audit` read model.
struct AuditController<Context: RequestContext> {
    let audit: AuditReadModel

    func addRoutes(to router: Router<Context>) {
        let group = router.group("/api/audit")
        group.get(use: list)
        group.get("stats", use: stats)
        group.get("{audit_id}", use: get)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let filter = try Self.filter(query)
        let page = try PageRequest(query, idIsInteger: true)
        return page.response(try await audit.list(filter, page: page.bounds), key: "logs")
    }

    @Sendable func stats(_ request: Request, context: Context) async throws -> Response {
        jsonResponse(try await audit.stats(try Self.filter(QueryParameters(request))))
    }

    @Sendable func get(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.integerID("audit_id")
        return try itemResponse(try await audit.item(id), notFound: "Audit log \(id) not found")
    }

    /// The seeds' filters: action, resource_type, resource_id, actor, status, start_date, end_date.
    static func filter(_ query: QueryParameters) throws -> AuditFilter {
        let status = try query.choice("status", AuditEntry.Status.self)
        let (start, end) = try query.dateRange()
        return AuditFilter(
            action: query.string("action"), resourceType: query.string("resource_type"),
            resourceId: query.string("resource_id"), actor: query.string("actor"), status: status?.rawValue,
            start: start, end: end)
    }
}
