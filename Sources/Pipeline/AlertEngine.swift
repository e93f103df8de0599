import Domain
import EventStore
import Foundation
import Logging
import PostgresNIO
import Projections

/// The rule engine: on each analysis of a security event, every enabled alert rule is matched
/// (``AlertMatching``) and each one that fires appends `AlertTriggered`.
///
/// A leased reactor, like the batch aggregator: it appends its alerts in the runner's
/// transaction, with its checkpoint and its state, so after a crash it goes on from exactly
/// what it had decided.
///
/// - **In log order.** It keeps the rules and zones itself (`alert_engine_rules`,
///   `alert_engine_zones`), applied as their events come: an analysis meets the rules in force
///   where it stands in the log, not those of the moment the engine gets to it.
/// - **Once.** An alert's id is derived from its rule and its security event
///   (``Alert/id(rule:event:)``), and the ids fired are kept (`alert_engine_fired`): a
///   reanalysis never fires a rule twice for one event, and a decision made again could not be
///   appended again.
/// - **Cooldown.** A rule's alerts share a dedup key (its template filled in); an alert whose
///   key fired less than `cooldown_seconds` before (by the analyses' log times) is not raised.
/// - **The detections** of an event come from the `detections` and `security_events` read
///   models, once they have applied the log up to the analysis (an analysis follows its
///   event's close in the log). If they don't get there in time, the page fails, loudly
///   (`last_error`), and is tried again.
///
/// - **Webhooks.** An alert of a rule with the `webhook` channel gets a row per configured URL
///   in `alert_webhooks` (the outbox), in the same transaction; ``WebhookDeliverer`` sends them.
///
/// Imported history is skipped: its alerts are in the log.
public struct AlertEngine: Projection {
    public let name = "alert_engine"
    public let filter = LogFilter(types: [
        SecurityEventAnalyzed.type, AlertRuleCreated.type, AlertRuleUpdated.type, AlertRuleDeleted.type,
        ZoneCreated.type, ZoneUpdated.type, ZoneDeleted.type,
    ])
    public var isReactor: Bool { true }

    let store: EventStore
    /// How long a page waits for the read models holding the detections.
    let readModelTimeout: Duration
    /// Where alerts of rules with the `webhook` channel go (``WebhookDeliverer``).
    let webhookURLs: [String]

    public init(store: EventStore, readModelTimeout: Duration = .seconds(30), webhookURLs: [String] = []) {
        self.store = store
        self.readModelTimeout = readModelTimeout
        self.webhookURLs = webhookURLs
    }

    static let metadata = EventMetadata(actor: SystemActor.alertEngine)
    /// The read models an analysis's detections are read from.
    static let sources = ["security_events", "detections"]

    public func apply(_ events: [RecordedEvent], on connection: PostgresConnection, logger: Logger) async throws {
        let events = events.filter { !EventMetadata.isImported($0.metadata) }
        guard !events.isEmpty else { return }
        var state = try await AlertEngineState.load(on: connection, logger: logger)
        let definitionsBefore = (state.rules, state.zones)
        let analyses = events.filter { $0.type == SecurityEventAnalyzed.type }
        var candidates: [Int64: AlertCandidate] = [:]
        let ruleEvents = events.contains { $0.type.hasPrefix("AlertRule") }
        if let last = analyses.last, !state.rules.isEmpty || ruleEvents {
            guard
                try await store.waitForProjections(Self.sources, toReach: last.checkpoint, timeout: readModelTimeout)
            else {
                throw AlertEngineError.readModelsBehind(Self.sources, last.checkpoint)
            }
            let ids = try analyses.map { try SecurityEventAnalyzed.decode($0.data).id }
            for candidate in try await AlertCandidatesReadModel.candidates(ids: ids, on: connection, logger: logger) {
                candidates[candidate.eventId] = candidate
            }
        }
        var requests: [AppendRequest] = []
        var raised: [AlertTriggered] = []
        for event in events {
            switch event.type {
            case AlertRuleCreated.type:
                let created = try AlertRuleCreated.decode(event.data)
                state.rules[created.id] = created.rule
            case AlertRuleUpdated.type:
                let updated = try AlertRuleUpdated.decode(event.data)
                state.rules[updated.id] = updated.rule
            case AlertRuleDeleted.type:
                state.rules[try AlertRuleDeleted.decode(event.data).id] = nil
            case ZoneCreated.type:
                let created = try ZoneCreated.decode(event.data)
                state.zones[created.id] = Zone(
                    id: created.id, cameraId: created.cameraId, definition: created.zone,
                    createdAt: created.createdAt, updatedAt: created.createdAt)
            case ZoneUpdated.type:
                let updated = try ZoneUpdated.decode(event.data)
                state.zones[updated.id]?.definition = updated.zone
            case ZoneDeleted.type:
                state.zones[try ZoneDeleted.decode(event.data).id] = nil
            case SecurityEventAnalyzed.type:
                guard !state.rules.isEmpty else { continue }
                let analysis = try SecurityEventAnalyzed.decode(event.data)
                guard var candidate = candidates[analysis.id] else {
                    logger.warning(
                        "an analysis names a security event the read models don't have; no rule is matched",
                        metadata: ["event_id": "\(analysis.id)", "position": "\(event.position)"])
                    continue
                }
                candidate.riskScore = analysis.riskScore
                for alert in try await state.decide(
                    candidate, analysis: analysis, at: event.recordedAt, on: connection, logger: logger)
                {
                    raised.append(alert)
                    var metadata = Self.metadata
                    metadata.causationId = event.id.uuidString
                    requests.append(
                        AppendRequest(
                            stream: alert.stream,
                            events: [
                                try NewEvent(
                                    alert, id: Alert.uuid(rule: alert.ruleId, event: alert.eventId), metadata: metadata)
                            ],
                            expected: .noStream))
                }
            default:
                continue
            }
        }
        let transaction = EventStoreTransaction(connection: connection, logger: logger)
        var fresh: [AlertTriggered] = []
        for (alert, result) in zip(raised, try await transaction.appendBatch(requests)) {
            // An alert the log holds already (history decided again: a store moved by export
            // and import) was delivered, or given up on, where it was raised.
            if try !result.get().wasAlreadyStored { fresh.append(alert) }
        }
        // Their webhook deliveries, due at once, with the alerts that cause them.
        try await AlertOutbox.enqueue(fresh, urls: webhookURLs, on: connection, logger: logger)
        try await state.save(
            definitionsChanged: definitionsBefore != (state.rules, state.zones), on: connection, logger: logger)
    }
}

public enum AlertEngineError: Error, CustomStringConvertible {
    case readModelsBehind([String], Checkpoint)

    public var description: String {
        switch self {
        case .readModelsBehind(let names, let checkpoint):
            "the read models \(names.joined(separator: ", ")) have not applied the log up to \(checkpoint) in time: "
                + "the analyses there can't be matched yet"
        }
    }
}

/// What the rule engine keeps between pages: the rules and zones in force, the last time each
/// dedup key fired, and the alerts fired.
struct AlertEngineState {
    var rules: [String: AlertRuleDefinition]
    var zones: [String: Zone]
    /// Keys fired in this page or read for it: when they last fired.
    var cooldowns: [String: Date] = [:]
    var changedCooldowns: Set<String> = []
    var fired: [String] = []

    static func load(on connection: PostgresConnection, logger: Logger) async throws -> AlertEngineState {
        var state = AlertEngineState(rules: [:], zones: [:])
        let rules = try await connection.query("SELECT id, definition::text FROM alert_engine_rules", logger: logger)
        for try await (id, json) in rules.decode((String, String).self) {
            state.rules[id] = try EventCoding.decoder.decode(AlertRuleDefinition.self, from: Data(json.utf8))
        }
        let zones = try await connection.query(
            "SELECT id, camera_id, definition::text FROM alert_engine_zones", logger: logger)
        for try await (id, camera, json) in zones.decode((String, String, String).self) {
            let definition = try EventCoding.decoder.decode(ZoneDefinition.self, from: Data(json.utf8))
            state.zones[id] = Zone(
                id: id, cameraId: camera, definition: definition, createdAt: .distantPast, updatedAt: .distantPast)
        }
        return state
    }

    /// The alerts the enabled rules raise for `candidate` (its analysis recorded `at`), in the
    /// rules' id order; each is remembered (fired, and its key's cooldown).
    mutating func decide(
        _ candidate: AlertCandidate, analysis: SecurityEventAnalyzed, at: Date, on connection: PostgresConnection,
        logger: Logger
    ) async throws -> [AlertTriggered] {
        var alerts: [AlertTriggered] = []
        for (ruleId, rule) in rules.sorted(by: { $0.key < $1.key }) where rule.enabled {
            let verdict = AlertMatching.evaluate(rule, candidate, zones: zones)
            guard verdict.matches else { continue }
            let id = Alert.id(rule: ruleId, event: candidate.eventId)
            let key = Alert.dedupKey(
                rule.dedupKeyTemplate, ruleId: ruleId, cameraId: candidate.cameraId, eventId: candidate.eventId,
                objectType: verdict.objectTypes.first, severity: rule.severity)
            if try await wasFired(id, on: connection, logger: logger) { continue }
            if let last = try await lastFired(key, on: connection, logger: logger),
                at < last.addingTimeInterval(TimeInterval(rule.cooldownSeconds))
            {
                continue
            }
            cooldowns[key] = at
            changedCooldowns.insert(key)
            fired.append(id)
            alerts.append(
                AlertTriggered(
                    id: id, eventId: candidate.eventId, ruleId: ruleId, ruleName: rule.name, severity: rule.severity,
                    channels: rule.channels, dedupKey: key, cameraId: candidate.cameraId,
                    riskScore: analysis.riskScore, objectTypes: verdict.objectTypes, summary: analysis.summary,
                    createdAt: at))
        }
        return alerts
    }

    private func wasFired(_ id: String, on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        if fired.contains(id) { return true }
        let rows = try await connection.query(
            "SELECT count(*) FROM alert_engine_fired WHERE id = \(id)", logger: logger)
        for try await count in rows.decode(Int64.self) { return count > 0 }
        return false
    }

    private mutating func lastFired(
        _ key: String, on connection: PostgresConnection, logger: Logger
    ) async throws -> Date? {
        if let known = cooldowns[key] { return known }
        let rows = try await connection.query(
            "SELECT fired_at FROM alert_engine_cooldowns WHERE dedup_key = \(key)", logger: logger)
        for try await firedAt in rows.decode(Date.self) {
            cooldowns[key] = firedAt
            return firedAt
        }
        return nil
    }

    /// Writes what changed: the definitions whole (they are few) when any changed, the keys
    /// that fired, the alerts fired.
    func save(definitionsChanged: Bool, on connection: PostgresConnection, logger: Logger) async throws {
        if definitionsChanged {
            var ruleIds: [String] = []
            var ruleJSON: [String] = []
            for (id, rule) in rules {
                ruleIds.append(id)
                ruleJSON.append(String(decoding: try EventCoding.encoder.encode(rule), as: UTF8.self))
            }
            var zoneIds: [String] = []
            var zoneCameras: [String] = []
            var zoneJSON: [String] = []
            for (id, zone) in zones {
                zoneIds.append(id)
                zoneCameras.append(zone.cameraId)
                zoneJSON.append(String(decoding: try EventCoding.encoder.encode(zone.definition), as: UTF8.self))
            }
            // Apart: in one statement, the inserts could meet the rows the deletes remove.
            try await connection.query("DELETE FROM alert_engine_rules", logger: logger)
            try await connection.query("DELETE FROM alert_engine_zones", logger: logger)
            try await connection.query(
                """
                INSERT INTO alert_engine_rules (id, definition)
                SELECT * FROM unnest(\(ruleIds)::text[], \(ruleJSON)::jsonb[])
                """, logger: logger)
            try await connection.query(
                """
                INSERT INTO alert_engine_zones (id, camera_id, definition)
                SELECT * FROM unnest(\(zoneIds)::text[], \(zoneCameras)::text[], \(zoneJSON)::jsonb[])
                """, logger: logger)
        }
        guard !fired.isEmpty else { return }
        let keys = Array(changedCooldowns)
        let times = keys.map { cooldowns[$0]! }
        try await connection.query(
            """
            WITH fired AS (INSERT INTO alert_engine_fired (id) SELECT unnest(\(fired)::text[]))
            INSERT INTO alert_engine_cooldowns (dedup_key, fired_at)
            SELECT * FROM unnest(\(keys)::text[], \(times)::timestamptz[])
            ON CONFLICT (dedup_key) DO UPDATE SET fired_at = excluded.fired_at
            """, logger: logger)
    }
}
