import Domain
import Foundation
import Testing

@Suite("System settings")
struct SystemConfigTests {
    @Test func changesNameOnlyTheFieldsThatDiffer() {
        var next = SystemConfig.defaults
        next.retentionDays = 14
        next.fastPathObjectTypes = ["person", "car"]
        next.appName = "ignored"  // not editable
        let changes = SystemConfig.defaults.changes(to: next)
        #expect(Set(changes.keys) == ["retention_days", "fast_path_object_types"])
        #expect(changes["retention_days"] == .init(from: .number(30), to: .number(14)))
        #expect(
            changes["fast_path_object_types"]
                == .init(from: .array([.string("person")]), to: .array([.string("person"), .string("car")])))
        #expect(SystemConfig.defaults.changes(to: .defaults).isEmpty)
    }

    @Test func foldAppliesChangesInOrderOverTheDefaults() throws {
        var base = SystemSettings.defaults
        base.config.batchWindowSeconds = 60  // the server's own default
        let events: [(type: String, data: String)] = [
            (
                SystemConfigChanged.type,
                try SystemConfigChanged(changes: [
                    "batch_idle_timeout_seconds": .init(from: .number(30), to: .number(10)),
                    "detection_confidence_threshold": .init(from: .number(0.5), to: .number(0.7)),
                ]).encodedData()
            ),
            (
                SeverityThresholdsChanged.type,
                try SeverityThresholdsChanged(
                    SeverityThresholds(lowMax: 20, mediumMax: 45, highMax: 70), previous: .defaults
                )
                .encodedData()
            ),
            (
                SystemConfigChanged.type,
                try SystemConfigChanged(changes: [
                    "batch_idle_timeout_seconds": .init(from: .number(10), to: .number(15))
                ]).encodedData()
            ),
        ]
        let settings = try base.folding(events)
        #expect(settings.config.batchWindowSeconds == 60)
        #expect(settings.config.batchIdleTimeoutSeconds == 15)
        #expect(settings.config.detectionConfidenceThreshold == 0.7)
        #expect(settings.thresholds == SeverityThresholds(lowMax: 20, mediumMax: 45, highMax: 70))
        let policy = settings.config.batchPolicy
        #expect(policy.idleTimeoutSeconds == 15)
        #expect(policy.confidenceThreshold == 0.7)
    }

    @Test func valuesOfTheWrongShapeAreIgnored() {
        let config = SystemConfig.defaults.applying([
            "retention_days": .string("forever"), "batch_window_seconds": .number(12.5), "unknown": .number(1),
            "batch_idle_timeout_seconds": .number(5),
        ])
        #expect(config.retentionDays == 30)
        #expect(config.batchWindowSeconds == 90)
        #expect(config.batchIdleTimeoutSeconds == 5)
        let settings = SystemSettings.defaults.applying(values: ["low_max": .number(90)])  // out of order
        #expect(settings.thresholds == .defaults)
    }
}
