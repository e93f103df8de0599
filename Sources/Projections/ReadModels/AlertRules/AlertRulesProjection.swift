import Domain
import EventStore
import Logging
import PostgresNIO

/// `alert_rules`: every rule's definition, as `/api/alerts/rules` lists them. Every rule event
/// is a barrier (rare, and a rule's create, updates and delete must apply in order).
public struct AlertRulesProjection: RunBasedProjection {
    public let name = "alert_rules"
    public let filter = LogFilter(types: [AlertRuleCreated.type, AlertRuleUpdated.type, AlertRuleDeleted.type])
    public let barriers: Set<String> = [AlertRuleCreated.type, AlertRuleUpdated.type, AlertRuleDeleted.type]

    public init() {}

    public func apply(_ segments: [EventRun.Segment], on connection: PostgresConnection, logger: Logger) async throws {
        try await applyRuns(segments, on: connection, logger: logger) { run in
            switch run.type {
            case AlertRuleCreated.type:
                return [
                    run.query { rows in
                        """
                        INSERT INTO alert_rules (id, enabled, severity, definition, created_at, updated_at)
                        SELECT e.data->>'id', (e.data->'rule'->>'enabled')::boolean, e.data->'rule'->>'severity',
                               e.data->'rule', (e.data->>'created_at')::timestamptz, (e.data->>'created_at')::timestamptz
                        FROM \(rows) AS e(data, pos)
                        ON CONFLICT (id) DO NOTHING
                        """
                    }
                ]
            case AlertRuleUpdated.type:
                return [
                    run.query { rows in
                        """
                        UPDATE alert_rules AS t
                        SET enabled = (u.rule->>'enabled')::boolean, severity = u.rule->>'severity',
                            definition = u.rule, updated_at = u.updated_at
                        FROM (SELECT DISTINCT ON (e.data->>'id') e.data->>'id' AS id, e.data->'rule' AS rule,
                                     (e.data->>'updated_at')::timestamptz AS updated_at
                              FROM \(rows) AS e(data, pos) ORDER BY e.data->>'id', e.pos DESC) AS u
                        WHERE t.id = u.id
                        """
                    }
                ]
            case AlertRuleDeleted.type:
                return [
                    run.query { rows in
                        "DELETE FROM alert_rules WHERE id IN (SELECT e.data->>'id' FROM \(rows) AS e(data, pos))"
                    }
                ]
            default:
                return []
            }
        }
    }
}
