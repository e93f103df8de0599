import Domain
import Foundation
import Testing

/// One instance of every event type, fields filled in both their minimal and full forms.
enum Samples {
    static let date = Date(timeIntervalSince1970: 1_795_000_000.125)

    static let events: [any DomainEvent] =
        [
            CameraRegistered(
                id: "front_door", name: "Front Door", folderPath: "/export/foscam/front_door",
                status: .online, registeredAt: date),
            CameraUpdated(id: "front_door", status: .offline, updatedAt: date),
            CameraUpdated(
                id: "front_door", name: "Porch", folderPath: "/export/porch", status: .online, updatedAt: date),
            CameraRemoved(id: "front_door", removedAt: date),
            UniqueValueReserved(
                scope: .cameraFolderPath, value: "/export/foscam/front_door", owner: "front_door", reservedAt: date),
            UniqueValueReleased(scope: .cameraName, value: "front_door", owner: "front_door", releasedAt: date),
            DetectionRecorded(
                id: 1, cameraId: "front_door", filePath: "/export/foscam/front_door/a.jpg", detectedAt: date,
                objectType: "person", confidence: 0.93, bboxX: 120, bboxY: 80, bboxWidth: 64, bboxHeight: 128),
            DetectionRecorded(
                id: 2, cameraId: "front_door", filePath: "/export/foscam/front_door/b.mp4", fileType: "video/mp4",
                detectedAt: date, objectType: "car", confidence: 1, bboxX: 0, bboxY: 0, bboxWidth: 10, bboxHeight: 10,
                thumbnailPath: "/data/thumbs/2.jpg", mediaType: "video", duration: 12.5, videoCodec: "h264",
                videoWidth: 1920, videoHeight: 1080,
                enrichmentData: [
                    "licensePlate": .string("AB-123"), "colors": .array([.string("red")]), "n": .number(2),
                ]),
            SecurityEventOpened(
                id: 7, cameraId: "front_door", batchId: "b-1", startedAt: date, detectionIds: [1, 2],
                objectTypes: ["person", "car"]),
            SecurityEventClosed(id: 7, endedAt: date, detectionIds: [1, 2], objectTypes: ["person", "car"]),
            SecurityEventAnalyzed(id: 7, riskScore: 85, summary: "Person at the door", reasoning: "Night, unknown"),
            SecurityEventAnalyzed(
                id: 7, riskScore: 0, summary: "", reasoning: "", model: "nemotron", latencyMs: 1200),
            SecurityEventReviewed(id: 7, reviewed: true, notes: nil),
            SecurityEventReviewed(id: 7, reviewed: nil, notes: "Delivery driver"),
            // Notes cleared: `"notes": null`, which must not read back as "unchanged".
            SecurityEventReviewed(id: 7, reviewed: nil, notes: .some(nil)),
            ReanalysisRequested(id: 7, reason: "new prompt"),
            ReanalysisRequested(id: 7),
            SystemConfigChanged(changes: [
                "retention_days": .init(from: .number(30), to: .number(14)),
                "detection_confidence_threshold": .init(from: .number(0.5), to: .number(0.65)),
                "fast_path_object_types": .init(
                    from: .array([.string("person")]), to: .array([.string("person"), .string("car")])),
            ]),
            SeverityThresholdsChanged(
                SeverityThresholds(lowMax: 20, mediumMax: 45, highMax: 70), previous: .defaults),
            ApiKeyIssued(
                name: "alice", role: .`operator`, secretHash: String(repeating: "ab", count: 32),
                prefix: "vigil_alice.AbCd", issuedAt: date, expiresAt: nil),
            ApiKeyIssued(
                name: "cam-worker_2", role: .worker, secretHash: String(repeating: "0f", count: 32),
                prefix: "vigil_cam-worker_2.x9-_", issuedAt: date, expiresAt: date.addingTimeInterval(86_400)),
            ApiKeyRevoked(name: "alice", revokedAt: date),
            RateLimitsChanged(
                RateLimits(enabled: true, standard: 120, search: 10, ingest: 6000, media: 1200, websocket: 5),
                previous: .defaults),
            CommandRejected(
                action: "settings_changed", resourceType: "severity_thresholds", resourceId: "severity", method: "PUT",
                path: "/api/system/severity", status: 403,
                detail: "API key 'alice' (role operator) may not PUT /api/system/severity", rejectedAt: date),
            CommandRejected(
                action: "camera_created", resourceType: "camera", resourceId: nil, method: "POST", path: "/api/cameras",
                status: 401, detail: "Invalid API key", suppressed: 12, rejectedAt: date),
        ] + rulesAndAlerts + notificationsAndEntities

    static let zone = ZoneDefinition(
        name: "porch", zoneType: .entryPoint, coordinates: [[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5]])
    static let rule = AlertRuleDefinition(
        name: "person at night", severity: .high, riskThreshold: 60, objectTypes: ["person"],
        cameraIds: ["front_door"], schedule: AlertSchedule(days: nil, startTime: "22:00", endTime: "06:00"),
        channels: ["webhook"])
    static let alert = Alert.id(rule: "r1", event: 7)

    static let rulesAndAlerts: [any DomainEvent] = [
        ZoneCreated(id: "z1", cameraId: "front_door", zone: zone, createdAt: date),
        ZoneUpdated(id: "z1", cameraId: "front_door", zone: zone, previous: zone, updatedAt: date),
        ZoneDeleted(id: "z1", cameraId: "front_door", deletedAt: date),
        AlertRuleCreated(id: "r1", rule: rule, createdAt: date),
        AlertRuleCreated(id: "r2", rule: AlertRuleDefinition(name: "anything"), createdAt: date),
        AlertRuleUpdated(id: "r1", rule: rule, previous: AlertRuleDefinition(name: "before"), updatedAt: date),
        AlertRuleDeleted(id: "r1", deletedAt: date),
        DeadLettersRequeued(queue: "dlq:analysis_queue", target: "analysis_queue", count: 2, jobIds: ["a", "b"]),
        DeadLettersCleared(queue: "dlq:alert_webhooks", count: 3),
        RetentionApplied(
            cutoff: Date(timeIntervalSince1970: 1_760_000_000), retentionDays: 30, segment: "retention-x.ndjson.lz4",
            sha256: String(repeating: "ab", count: 32), logEvents: 12, securityEvents: 2, detections: 6, alerts: 1,
            operationalLogs: 0),
        RetentionApplied(
            cutoff: Date(timeIntervalSince1970: 1_760_000_000), retentionDays: 1, segment: nil, sha256: nil,
            logEvents: 0,
            securityEvents: 0, detections: 0, alerts: 0, operationalLogs: 0),
        AlertTriggered(
            id: alert, eventId: 7, ruleId: "r1", ruleName: "person at night", severity: .high, channels: ["webhook"],
            dedupKey: "front_door:r1", cameraId: "front_door", riskScore: 85, objectTypes: ["person"],
            summary: "Person at the door", createdAt: date),
        AlertAcknowledged(id: alert, previousStatus: .delivered, acknowledgedAt: date),
        AlertDismissed(id: alert, previousStatus: .acknowledged, dismissedAt: date),
        AlertDelivered(
            id: alert, channel: "webhook", target: "https://hooks.example.com/v", attempts: 2, deliveredAt: date),
        AlertDelivered(id: alert, channel: "webhook", attempts: 1, deliveredAt: date),
        AlertDeliveryFailed(
            id: alert, channel: "webhook", target: "https://hooks.example.com/v", attempts: 5, error: "HTTP 503",
            failedAt: date),
        AlertDeliverySuppressed(
            id: alert, channel: "webhook", target: nil, reason: "quiet hours: night", suppressedAt: date),
    ]

    static let notificationsAndEntities: [any DomainEvent] = [
        NotificationPreferencesChanged(
            preferences: NotificationPreferences(enabled: false, sound: .chime, riskFilters: [.critical]),
            previous: .defaults, changedAt: date),
        CameraNotificationSettingChanged(
            cameraId: "front_door", setting: CameraNotificationSetting(enabled: true, riskThreshold: 70),
            previous: .defaults, changedAt: date),
        QuietHoursSet(
            id: "q1", period: QuietHours(label: "night", startTime: "22:00:00", endTime: "06:30:00", days: ["monday"]),
            previous: nil, setAt: date),
        QuietHoursSet(
            id: "q1",
            period: QuietHours(label: "night", startTime: "22:00:00", endTime: "07:00:00", days: QuietHours.weekdays),
            previous: QuietHours(label: "night", startTime: "22:00:00", endTime: "06:30:00", days: ["monday"]),
            setAt: date),
        QuietHoursDeleted(id: "q1", deletedAt: date),
        NotificationTested(channel: "webhook", targets: 2, succeeded: 1, testedAt: date),
        EntitySighted(
            entityId: "e1", entityType: .person, cameraId: "front_door", detectionId: nil, similarity: nil,
            seenAt: date, attributes: nil),
        EntitySighted(
            entityId: "e1", entityType: .person, cameraId: "garage", detectionId: 12, similarity: 0.93, seenAt: date,
            attributes: ["clothing": .string("red jacket")]),
        EntityTrustChanged(entityId: "e1", trustStatus: .trusted, previous: .unknown, changedAt: date),
    ]

    static func json(_ events: [(type: String, version: Int32, data: String)]) -> String {
        "["
            + events.map { #"{"type":"\#($0.type)","schema_version":\#($0.version),"data":\#($0.data)}"# }
            .joined(separator: ",") + "]"
    }

    static func encoded(_ event: any DomainEvent) throws -> (type: String, version: Int32, data: String) {
        (type(of: event).type, type(of: event).schemaVersion, try event.encodedData())
    }
}

@Suite("Event schemas")
struct EventSchemaTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Runs `tools/validate-events` (Python's jsonschema) on `samples`; its exit status and output.
    static func validate(_ samples: String, allSchemas: Bool) throws -> (status: Int32, output: String) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-samples-\(UUID()).json")
        try samples.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            ["python3", root.appendingPathComponent("tools/validate-events").path, file.path]
            + (allSchemas ? ["--all-schemas"] : [])
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    @Test("Every event type's encoding is valid under its published JSON Schema, and every schema is used")
    func everyTypeMatchesItsSchema() throws {
        let result = try Self.validate(Samples.json(try Samples.events.map(Samples.encoded)), allSchemas: true)
        #expect(result.status == 0, "\(result.output)")
        let sampled = Set(Samples.events.map { type(of: $0).type })
        #expect(sampled == Set(EventCatalog.types.map { $0.type }))
    }

    @Test("The catalog names every event type the domain declares")
    func catalogIsComplete() throws {
        let domain = Self.root.appendingPathComponent("Sources/Domain")
        var declared: Set<String> = []
        for file in try FileManager.default.contentsOfDirectory(atPath: domain.path) where file.hasSuffix(".swift") {
            let text = try String(contentsOf: domain.appendingPathComponent(file), encoding: .utf8)
            for line in text.split(separator: "\n") where line.contains("public static let type = \"") {
                declared.insert(String(line.split(separator: "\"")[1]))
            }
        }
        #expect(declared.count > 30)
        #expect(declared == Set(EventCatalog.types.map { $0.type }))
    }

    @Test("The schemas refuse what the contract forbids: a missing field, a score over 100, a level")
    func schemasRefuseBadPayloads() throws {
        let bad: [(type: String, version: Int32, data: String)] = [
            (
                "CameraRegistered", 1,
                #"{"id":"x","folder_path":"/a","status":"online","registered_at":"2026-11-23T00:00:00Z"}"#
            ),
            ("SecurityEventAnalyzed", 1, #"{"id":1,"risk_score":101,"summary":"","reasoning":""}"#),
            (
                "SecurityEventAnalyzed", 1,
                #"{"id":1,"risk_score":50,"risk_level":"medium","summary":"","reasoning":""}"#
            ),
            ("DetectionRecorded", 1, #"{"id":1}"#),
        ]
        let result = try Self.validate(Samples.json(bad), allSchemas: false)
        #expect(result.status == 1)
        for index in 0..<bad.count { #expect(result.output.contains("sample \(index) ")) }
        #expect(result.output.contains("'name' is a required property"))
        #expect(result.output.contains("risk_level"))
    }

    @Test("Payloads round-trip; timestamps keep milliseconds; free-form keys are kept as they are")
    func roundTrip() throws {
        for event in Samples.events {
            let data = try event.encodedData()
            let decoded = try type(of: event).decode(data)
            #expect(AnyHashable(decoded) == AnyHashable(event), "\(data)")
        }
        let detection = try #require(Samples.events.compactMap { $0 as? DetectionRecorded }.last)
        let data = try detection.encodedData()
        #expect(data.contains(#""detected_at":"2026-11-18T11:06:40.125Z""#))
        #expect(data.contains(#""licensePlate":"AB-123""#))
        #expect(detection.stream == "detections-front_door")
    }
}

@Suite("Cameras and severity")
struct CameraTests {
    @Test(
        "Camera ids are normalised from names",
        arguments: [
            ("Front Door", "front_door"), ("front-door", "front_door"), ("  Back  Yard!! ", "back_yard"),
            ("Garage_2", "garage_2"), ("Caf\u{E9}--Patio", "caf\u{E9}_patio"), ("Cafe\u{301} Patio", "caf\u{E9}_patio"),
            ("!!!", ""),
        ])
    func normalizedID(name: String, id: String) {
        // By scalars: Swift's `==` takes `é` and `e` + U+0301 as equal, PostgreSQL doesn't.
        #expect(Array(Camera.normalizedID(name).unicodeScalars) == Array(id.unicodeScalars))
    }

    @Test("A camera's stream folds to its current state; removal ends it")
    func fold() throws {
        let date = Samples.date
        let events: [any DomainEvent] = [
            CameraRegistered(id: "a", name: "A", folderPath: "/a", status: .online, registeredAt: date),
            CameraUpdated(id: "a", status: .offline, updatedAt: date),
        ]
        let stored = try events.map { (type: type(of: $0).type, data: try $0.encodedData()) }
        let camera = try #require(try Camera.fold(stored))
        #expect(camera.status == .offline && camera.name == "A" && camera.folderPath == "/a")
        #expect(camera.update(name: "A", folderPath: nil, status: .offline, at: date) == nil)
        #expect(camera.update(name: "B", folderPath: "/a", status: nil, at: date)?.name == "B")
        let removed =
            stored + [(type: CameraRemoved.type, data: try CameraRemoved(id: "a", removedAt: date).encodedData())]
        #expect(try Camera.fold(removed) == nil)
    }

    @Test("Risk levels follow the thresholds in force")
    func levels() {
        let defaults = SeverityThresholds.defaults
        #expect(
            [0, 29, 30, 59, 60, 84, 85, 100].map(defaults.level) == [
                .low, .low, .medium, .medium, .high, .high, .critical, .critical,
            ])
        #expect(defaults.scores(of: .medium) == 30...59)
        let strict = SeverityThresholds(lowMax: 10, mediumMax: 20, highMax: 100)
        #expect(strict.isValid && strict.scores(of: .critical) == nil && strict.level(100) == .high)
        #expect(!SeverityThresholds(lowMax: 50, mediumMax: 50, highMax: 90).isValid)
    }

    @Test func importedMetadataIsRecognised() throws {
        let imported = try EventMetadata(actor: "import", imported: true).encoded()
        #expect(EventMetadata.isImported(imported))
        #expect(EventMetadata.isImported(#"{"actor":"a","imported":true}"#))
        #expect(!EventMetadata.isImported(#"{"actor":"a","imported":false}"#))
        #expect(!EventMetadata.isImported(try EventMetadata(actor: "worker", requestId: "r-1").encoded()))
        #expect(!EventMetadata.isImported(#"{"actor":"importer"}"#))
        #expect(!EventMetadata.isImported(#"{"actor":"imported"}"#))
        #expect(!EventMetadata.isImported("{}"))
        #expect(!EventMetadata.isImported(""))
    }

    @Test func theSharedCodersAgreeUnderConcurrentUse() async throws {
        let expected = try Samples.events.map { try $0.encodedData() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    for _ in 0..<50 {
                        for (event, json) in zip(Samples.events, expected) {
                            let encoded = try event.encodedData()
                            let again = try type(of: event).decode(json).encodedData()
                            #expect(encoded == json && again == json)
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}
