import Foundation
import PostgresNIO

/// How `/api/alerts/rules` reads the `alert_rules` read model (``AlertRulesProjection``).
public struct AlertRulesReadModel: Sendable {
    let database: ReadDatabase

    public init(database: ReadDatabase) { self.database = database }

    static let list = ListSpec(table: "alert_rules", timeColumn: "created_at", idIsInteger: false, visible: "true")

    /// A page of the rules, newest first, filtered by `enabled` and `severity` when given.
    public func list(enabled: Bool?, severity: String?, page: PageBounds) async throws -> ListPage {
        var sql = SQLBuilder()
        if let enabled { sql.condition("t.enabled = \(sql.bind(enabled))") }
        if let severity { sql.condition("t.severity = \(sql.bind(severity))") }
        return try await Self.list.page(item: Self.item, filters: sql, bounds: page, in: database)
    }

    /// The rule (JSON); nil when there is none with that id.
    public func item(_ id: String) async throws -> String? {
        try await database.json { sql in "SELECT \(Self.item) FROM alert_rules t WHERE t.id = \(sql.bind(id))" }
    }

    /// The item JSON of the row `t` (CONTRACT: Alerts): the definition, its id and times.
    static let item = """
        (t.definition || jsonb_build_object(
            'id', t.id, 'created_at', vigil_ts(t.created_at), 'updated_at', vigil_ts(t.updated_at)))::text
        """
}
