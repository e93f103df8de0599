import Domain
import EventStore
import Foundation
import Logging
import PostgresNIO
import Projections
import Synthetic
import Testing
import VigilTesting

/// The history the rebuild tests append: every kind of event each read model takes.
extension ReadModelRebuildTests {
    /// Camera lifecycle events: each camera renamed, then (one append, adjacent in the log) taken
    /// offline and back online under a new folder, then renamed and set to `error` in another
    /// adjacent pair (only some fields present each time).
    static func appendCameraUpdates(_ history: SyntheticHistory, round: Int, _ store: EventStore) async throws {
        let metadata = EventMetadata(actor: "tests")
        for (index, camera) in history.cameras.enumerated() {
            let at = Self.start.addingTimeInterval(Double(round * 1000 + index * 10))
            let updates: [[CameraUpdated]] = [
                [CameraUpdated(id: camera.id, name: "\(camera.name) r\(round)", updatedAt: at)],
                [
                    CameraUpdated(id: camera.id, status: .offline, updatedAt: at.addingTimeInterval(1)),
                    CameraUpdated(
                        id: camera.id, folderPath: "/mnt/r\(round)/\(camera.id)", status: .online,
                        updatedAt: at.addingTimeInterval(2)),
                ],
                [
                    CameraUpdated(
                        id: camera.id, name: "\(camera.name) r\(round)b", updatedAt: at.addingTimeInterval(3)),
                    CameraUpdated(id: camera.id, status: .error, updatedAt: at.addingTimeInterval(4)),
                ],
            ]
            for events in updates {
                try await store.append(
                    to: camera.stream, events: try events.map { try NewEvent($0, metadata: metadata) })
                try await Task.sleep(for: .milliseconds(5))  // interleave with the other writers
            }
        }
    }

    /// API keys: issued (one with an expiry), one revoked later, and one issued and revoked in
    /// the same append (adjacent in the log, so in one batch).
    static func appendKeyLifecycle(_ store: EventStore) async throws {
        let metadata = EventMetadata(actor: "tests")
        let issued = { (name: String, role: Role, expires: Date?) in
            try NewEvent(
                ApiKeyIssued(
                    name: name, role: role, secretHash: String(repeating: "0", count: 64), prefix: "vigil_\(name).abcd",
                    issuedAt: Self.start, expiresAt: expires),
                metadata: metadata)
        }
        try await store.append(to: ApiKey.stream("alice"), events: [try issued("alice", .`operator`, nil)])
        try await store.append(
            to: ApiKey.stream("cam-1"), events: [try issued("cam-1", .worker, Self.start.addingTimeInterval(86_400))])
        try await store.append(
            to: ApiKey.stream("brief"),
            events: [
                try issued("brief", .viewer, nil),
                try NewEvent(
                    ApiKeyRevoked(name: "brief", revokedAt: Self.start.addingTimeInterval(60)), metadata: metadata),
            ])
        try await Task.sleep(for: .milliseconds(5))
        try await store.append(
            to: ApiKey.stream("alice"),
            events: [
                try NewEvent(
                    ApiKeyRevoked(name: "alice", revokedAt: Self.start.addingTimeInterval(120)), metadata: metadata)
            ])
    }

    /// Re-analyses of some of `range`'s security events: two in one append (adjacent in the log),
    /// each with a new score, the second one final.
    static func appendReanalyses(_ range: Range<Int>, _ store: EventStore) async throws {
        let metadata = EventMetadata(actor: "tests")
        for n in range where n % 5 == 2 {
            let analyses = (1...2).map { k in
                SecurityEventAnalyzed(
                    id: Int64(n + 1), riskScore: (n * 37 + k * 41) % 101, summary: "re-analysis \(k) of \(n)",
                    reasoning: "second opinion \(k)", model: "synthetic-v\(k + 1)", latencyMs: 100 * k)
            }
            try await store.append(
                to: analyses[0].stream, events: try analyses.map { try NewEvent($0, metadata: metadata) })
        }
    }

    /// A history that fills every read-model table, appended while the caller's runners build
    /// live. Returns the checkpoint of a marker appended last.
    static func appendEveryKindOfEvent(_ history: SyntheticHistory, _ store: EventStore) async throws -> Checkpoint {
        let metadata = EventMetadata(actor: "tests")
        // Built live, batch by batch, while writers append concurrently: security events
        // with reviews, camera updates, re-analyses (of events appended earlier).
        try await store.appendSynthetic(history, events: 0..<20, detectionsPerEvent: 2, chunk: 10)
        async let first = Self.appendConcurrently(history, [20..<60, 60..<100], store)
        async let updates: Void = Self.appendCameraUpdates(history, round: 1, store)
        async let reanalyses: Void = Self.appendReanalyses(0..<20, store)
        async let keys: Void = Self.appendKeyLifecycle(store)
        _ = try await (first, updates, reanalyses, keys)

        // The garage is removed (what it recorded is hidden, its analytics deleted), then
        // registered again, and everything goes on: more events (also of the garage),
        // updates, re-analyses of events of every camera, the removed one's included.
        try await store.append(
            to: Camera.stream("garage"),
            events: [
                try NewEvent(
                    CameraRemoved(id: "garage", removedAt: Self.start.addingTimeInterval(180_000)),
                    metadata: metadata)
            ])
        async let second = Self.appendConcurrently(history, [100..<140, 140..<180], store)
        async let moreReanalyses: Void = Self.appendReanalyses(20..<100, store)
        let again = try NewEvent(
            CameraRegistered(
                id: "garage", name: "Garage", folderPath: "/export/foscam/garage2", status: .unknown,
                registeredAt: Self.start.addingTimeInterval(190_000)),
            metadata: metadata)
        async let registration = store.append(to: Camera.stream("garage"), events: [again])
        _ = try await (second, moreReanalyses, registration)
        try await Self.appendCameraUpdates(history, round: 2, store)
        try await Self.appendZonesAndRules(store)
        // A shed camera comes and goes, and still stands removed at the end (`removed_cameras`).
        let shed = [
            try NewEvent(
                CameraRegistered(
                    id: "shed", name: "Shed", folderPath: "/export/foscam/shed", status: .unknown,
                    registeredAt: Self.start.addingTimeInterval(200_000)),
                metadata: metadata),
            try NewEvent(
                CameraRemoved(id: "shed", removedAt: Self.start.addingTimeInterval(200_100)), metadata: metadata),
        ]
        try await store.append(to: Camera.stream("shed"), events: shed)
        return try await store.append(to: "marker-1", events: [detection()]).checkpoints[0]
    }

    /// Zones (three drawn, one changed twice, one deleted), alert rules (three made, one
    /// changed, one deleted) and alerts (see ``appendAlerts(_:)``).
    static func appendZonesAndRules(_ store: EventStore) async throws {
        try await appendZones(store)
        try await appendAlerts(store)
        try await appendNotificationPreferences(store)
        try await appendEntities(store)
        let metadata = EventMetadata(actor: "tests")
        let at = Self.start.addingTimeInterval(210_000)
        for n in 0..<3 {
            let id = "rule-test-\(n)"
            var rule = AlertRuleDefinition(
                name: "rule \(n)", severity: n == 0 ? .critical : .high, riskThreshold: 50 + n,
                objectTypes: ["person"],
                schedule: AlertSchedule(days: ["mon", "tue"], startTime: "22:00", endTime: "06:00"),
                channels: ["webhook"])
            try await store.append(
                to: AlertRule.stream(id),
                events: [try NewEvent(AlertRuleCreated(id: id, rule: rule, createdAt: at), metadata: metadata)])
            if n == 1 {
                let previous = rule
                rule.enabled = false
                rule.cameraIds = ["front_door"]
                try await store.append(
                    to: AlertRule.stream(id),
                    events: [
                        try NewEvent(
                            AlertRuleUpdated(
                                id: id, rule: rule, previous: previous, updatedAt: at.addingTimeInterval(1)),
                            metadata: metadata)
                    ])
            }
            if n == 2 {
                try await store.append(
                    to: AlertRule.stream(id),
                    events: [try NewEvent(AlertRuleDeleted(id: id, deletedAt: at), metadata: metadata)])
            }
        }
    }

    /// Alerts: four raised; one delivered, one acknowledged then delivered, one delivered then
    /// acknowledged then dismissed, one left pending.
    static func appendAlerts(_ store: EventStore) async throws {
        let metadata = EventMetadata(actor: "tests")
        let at = Self.start.addingTimeInterval(220_000)
        for n in 0..<4 {
            let id = Alert.id(rule: "rule-test-0", event: Int64(n + 1))
            var events = [
                try NewEvent(
                    AlertTriggered(
                        id: id, eventId: Int64(n + 1), ruleId: "rule-test-0", ruleName: "rule 0", severity: .critical,
                        channels: ["webhook"], dedupKey: "front_door:rule-test-0", cameraId: "front_door",
                        riskScore: 70 + n, objectTypes: ["person"], summary: "someone \(n)",
                        createdAt: at.addingTimeInterval(Double(n))), metadata: metadata)
            ]
            let delivered = AlertDelivered(id: id, channel: "webhook", attempts: n + 1, deliveredAt: at + 100)
            let acknowledged = AlertAcknowledged(id: id, previousStatus: .pending, acknowledgedAt: at + 200)
            switch n {
            case 0: events.append(try NewEvent(delivered, metadata: metadata))
            case 1:
                events += [try NewEvent(acknowledged, metadata: metadata), try NewEvent(delivered, metadata: metadata)]
            case 2:
                events += [
                    try NewEvent(delivered, metadata: metadata), try NewEvent(acknowledged, metadata: metadata),
                    try NewEvent(
                        AlertDismissed(id: id, previousStatus: .acknowledged, dismissedAt: at + 300), metadata: metadata
                    ),
                ]
            default: break
            }
            try await store.append(to: Alert.stream(id), events: events)
        }
    }

    /// Notification preferences: changed twice, two cameras set (one twice), three quiet-hours
    /// periods (one changed, one deleted).
    static func appendNotificationPreferences(_ store: EventStore) async throws {
        let metadata = EventMetadata(actor: "tests")
        let at = Self.start.addingTimeInterval(230_000)
        var preferences = NotificationPreferences.defaults
        for round in 0..<2 {
            let previous = preferences
            preferences.sound = round == 0 ? .chime : .urgent
            preferences.riskFilters = round == 0 ? [.high, .critical] : [.critical]
            try await store.append(
                to: NotificationPreferencesChanged.streamName,
                events: [
                    try NewEvent(
                        NotificationPreferencesChanged(preferences: preferences, previous: previous, changedAt: at),
                        metadata: metadata)
                ])
        }
        for (camera, thresholds) in [("front_door", [50, 70]), ("garage", [90])] {
            var setting = CameraNotificationSetting.defaults
            for threshold in thresholds {
                let previous = setting
                setting.riskThreshold = threshold
                try await store.append(
                    to: CameraNotificationSettingChanged.stream(camera),
                    events: [
                        try NewEvent(
                            CameraNotificationSettingChanged(
                                cameraId: camera, setting: setting, previous: previous,
                                changedAt: at + Double(threshold)), metadata: metadata)
                    ])
            }
        }
        for n in 0..<3 {
            let id = "quiet-\(n)"
            let period = QuietHours(label: "period \(n)", startTime: "22:00:00", endTime: "06:00:00", days: ["monday"])
            var events = [
                try NewEvent(QuietHoursSet(id: id, period: period, previous: nil, setAt: at), metadata: metadata)
            ]
            if n == 1 {
                var changed = period
                changed.endTime = "07:00:00"
                events.append(
                    try NewEvent(
                        QuietHoursSet(id: id, period: changed, previous: period, setAt: at + 5), metadata: metadata))
            }
            if n == 2 { events.append(try NewEvent(QuietHoursDeleted(id: id, deletedAt: at + 9), metadata: metadata)) }
            try await store.append(to: QuietHoursSet.stream(id), events: events)
        }
    }

    /// Entities: three, sighted on several cameras (one sighting reported late), one trusted.
    static func appendEntities(_ store: EventStore) async throws {
        let metadata = EventMetadata(actor: "tests")
        let at = Self.start.addingTimeInterval(240_000)
        for n in 0..<3 {
            let id = "entity-test-\(n)"
            var events: [NewEvent] = []
            for (k, offset) in [0.0, 60, -30, 60].prefix(n + 2).enumerated() {
                events.append(
                    try NewEvent(
                        EntitySighted(
                            entityId: id, entityType: n == 1 ? .vehicle : .person,
                            cameraId: k % 2 == 0 ? "front_door" : "garage", detectionId: Int64(k + 1),
                            similarity: k == 0 ? nil : 0.9, seenAt: at + offset,
                            attributes: k == 0 ? ["colour": .string("red")] : nil), metadata: metadata))
            }
            if n == 2 {
                events.append(
                    try NewEvent(
                        EntityTrustChanged(entityId: id, trustStatus: .trusted, previous: .unknown, changedAt: at),
                        metadata: metadata))
            }
            try await store.append(to: Entity.stream(id), events: events)
        }
    }

    /// Zones: three drawn, one changed twice, one deleted.
    static func appendZones(_ store: EventStore) async throws {
        let metadata = EventMetadata(actor: "tests")
        let at = Self.start.addingTimeInterval(200_000)
        var zones: [(String, ZoneDefinition)] = []
        for n in 0..<3 {
            let zone = ZoneDefinition(
                name: "zone \(n)", zoneType: .entryPoint, coordinates: [[0.1, 0.1], [0.5, 0.1], [0.3, 0.6]],
                shape: .polygon, priority: n)
            let id = "zone-test-\(n)"
            zones.append((id, zone))
            try await store.append(
                to: Zone.stream(id),
                events: [
                    try NewEvent(
                        ZoneCreated(id: id, cameraId: "front_door", zone: zone, createdAt: at), metadata: metadata)
                ])
        }
        var changed = zones[0].1
        for round in 1...2 {
            let previous = changed
            changed.name = "zone 0, round \(round)"
            changed.enabled = round == 1
            try await store.append(
                to: Zone.stream(zones[0].0),
                events: [
                    try NewEvent(
                        ZoneUpdated(
                            id: zones[0].0, cameraId: "front_door", zone: changed, previous: previous,
                            updatedAt: at.addingTimeInterval(Double(round))),
                        metadata: metadata)
                ])
        }
        try await store.append(
            to: Zone.stream(zones[2].0),
            events: [
                try NewEvent(ZoneDeleted(id: zones[2].0, cameraId: "front_door", deletedAt: at), metadata: metadata)
            ])
    }

    /// The garage's security events opened, in log order (`tx_id`, then `position`), before it
    /// was registered the second time.
    static func garageEventsBeforeItsReturn(_ store: EventStore) async throws -> Int {
        let rows = try await store.client.query(
            """
            SELECT count(*) FROM events o,
                (SELECT tx_id, position FROM events
                 WHERE stream = \(Camera.stream("garage")) AND type = \(CameraRegistered.type)
                 ORDER BY tx_id DESC, position DESC LIMIT 1) r
            WHERE o.type = \(SecurityEventOpened.type) AND o.data->>'camera_id' = 'garage'
              AND (o.tx_id < r.tx_id OR (o.tx_id = r.tx_id AND o.position < r.position))
            """, logger: store.logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }
}
