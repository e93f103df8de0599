import EventStore
import Foundation
import PostgresNIO

/// The parked webhook deliveries as a dead-letter list (`/api/dlq/…/dlq:alert_webhooks`): look
/// at them, requeue them (a fresh set of attempts, due now), or drop them.
public struct WebhookDeadLetters: Sendable {
    public static let name = "dlq:alert_webhooks"
    public static let target = "alert_webhooks"

    public struct Entry: Sendable {
        public var deliveryId: UUID
        public var alertId: String
        public var url: String
        public var alert: String
        public var attempts: Int
        public var error: String?
        public var createdAt: Date
        public var parkedAt: Date
    }

    let store: EventStore

    public init(store: EventStore) { self.store = store }

    public func count() async throws -> Int {
        let rows = try await store.client.guardedQuery(
            "SELECT count(*) FROM alert_webhooks WHERE parked_at IS NOT NULL", logger: store.logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    /// Oldest parked first, from the `start`th.
    public func entries(start: Int, limit: Int) async throws -> [Entry] {
        let rows = try await store.client.guardedQuery(
            """
            SELECT delivery_id, alert_id, url, alert::text, attempts, last_error, created_at, parked_at
            FROM alert_webhooks WHERE parked_at IS NOT NULL
            ORDER BY parked_at, delivery_id LIMIT \(limit) OFFSET \(start)
            """, logger: store.logger)
        var entries: [Entry] = []
        for try await (id, alert, url, json, attempts, error, created, parked) in rows.decode(
            (UUID, String, String, String, Int32, String?, Date, Date).self)
        {
            entries.append(
                Entry(
                    deliveryId: id, alertId: alert, url: url, alert: json, attempts: Int(attempts), error: error,
                    createdAt: created, parkedAt: parked))
        }
        return entries
    }

    /// Makes up to `limit` parked deliveries due again, oldest parked first; returns their ids.
    public func requeue(limit: Int) async throws -> [UUID] {
        let rows = try await store.client.guardedQuery(
            """
            UPDATE alert_webhooks SET parked_at = NULL, attempts = 0, next_attempt_at = now()
            WHERE delivery_id IN (
                SELECT delivery_id FROM alert_webhooks WHERE parked_at IS NOT NULL
                ORDER BY parked_at, delivery_id LIMIT \(limit) FOR UPDATE SKIP LOCKED)
            RETURNING delivery_id
            """, logger: store.logger)
        var ids: [UUID] = []
        for try await id in rows.decode(UUID.self) { ids.append(id) }
        return ids
    }

    /// Drops every parked delivery; returns how many.
    public func clear() async throws -> Int {
        let rows = try await store.client.guardedQuery(
            "WITH gone AS (DELETE FROM alert_webhooks WHERE parked_at IS NOT NULL RETURNING 1) SELECT count(*) FROM gone",
            logger: store.logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }
}
