import Foundation

/// The settings people change at run time (`/api/system/config`), with the seeds' names and
/// defaults. Stream `config-system`, together with the severity thresholds.
public struct SystemConfig: Sendable, Hashable, Codable {
    public var appName: String
    public var version: String
    /// Days of history kept in the hot table (1–365).
    public var retentionDays: Int
    public var batchWindowSeconds: Int
    public var batchIdleTimeoutSeconds: Int
    /// Detections below it are recorded but not batched (0–1).
    public var detectionConfidenceThreshold: Double
    public var fastPathConfidenceThreshold: Double
    public var fastPathObjectTypes: [String]

    public static let defaults = SystemConfig(
        appName: "Vigil", version: "0.1.0", retentionDays: 30, batchWindowSeconds: 90, batchIdleTimeoutSeconds: 30,
        detectionConfidenceThreshold: 0.5, fastPathConfidenceThreshold: 0.9, fastPathObjectTypes: ["person"])

    public init(
        appName: String, version: String, retentionDays: Int, batchWindowSeconds: Int, batchIdleTimeoutSeconds: Int,
        detectionConfidenceThreshold: Double, fastPathConfidenceThreshold: Double, fastPathObjectTypes: [String]
    ) {
        self.appName = appName
        self.version = version
        self.retentionDays = retentionDays
        self.batchWindowSeconds = batchWindowSeconds
        self.batchIdleTimeoutSeconds = batchIdleTimeoutSeconds
        self.detectionConfidenceThreshold = detectionConfidenceThreshold
        self.fastPathConfidenceThreshold = fastPathConfidenceThreshold
        self.fastPathObjectTypes = fastPathObjectTypes
    }

    /// The fields `PATCH /api/system/config` may change (`app_name` and `version` are the
    /// build's), in the order the API lists them.
    public static let editableFields = [
        "retention_days", "batch_window_seconds", "batch_idle_timeout_seconds", "detection_confidence_threshold",
        "fast_path_confidence_threshold", "fast_path_object_types",
    ]

    /// How the batch aggregator groups detections under this configuration.
    public var batchPolicy: BatchPolicy {
        BatchPolicy(
            windowSeconds: batchWindowSeconds, idleTimeoutSeconds: batchIdleTimeoutSeconds,
            confidenceThreshold: detectionConfidenceThreshold, fastPathConfidence: fastPathConfidenceThreshold,
            fastPathObjectTypes: Set(fastPathObjectTypes))
    }

    /// The configuration as a JSON object (the API's and the events' field names).
    public var fields: [String: JSONValue] {
        // Encoding a struct of numbers, strings and a string list can't fail.
        let data = (try? EventCoding.encoder.encode(self)) ?? Data("{}".utf8)
        guard case .object(let fields)? = try? JSONDecoder().decode(JSONValue.self, from: data) else { return [:] }
        return fields
    }

    /// This configuration with `values` (field name → new value) applied; values of unknown
    /// fields or of the wrong type are ignored.
    public func applying(_ values: [String: JSONValue]) -> SystemConfig {
        var result = self
        for (name, value) in values {
            var merged = result.fields
            merged[name] = value
            guard let data = try? EventCoding.encoder.encode(JSONValue.object(merged)),
                let next = try? EventCoding.decoder.decode(SystemConfig.self, from: data)
            else { continue }
            result = next
        }
        return result
    }

    /// The fields that differ in `other`, from this configuration's value to `other`'s.
    public func changes(to other: SystemConfig) -> [String: SystemConfigChanged.Change] {
        let before = fields
        let after = other.fields
        var changes: [String: SystemConfigChanged.Change] = [:]
        for name in Self.editableFields where before[name] != after[name] {
            changes[name] = .init(from: before[name] ?? .null, to: after[name] ?? .null)
        }
        return changes
    }

    enum CodingKeys: String, CodingKey {
        case version
        case appName = "app_name"
        case retentionDays = "retention_days"
        case batchWindowSeconds = "batch_window_seconds"
        case batchIdleTimeoutSeconds = "batch_idle_timeout_seconds"
        case detectionConfidenceThreshold = "detection_confidence_threshold"
        case fastPathConfidenceThreshold = "fast_path_confidence_threshold"
        case fastPathObjectTypes = "fast_path_object_types"
    }
}

/// Someone changed system configuration (`PATCH /api/system/config`): each changed field with
/// its value before and after. Stream `config-system`.
public struct SystemConfigChanged: DomainEvent {
    public static let type = "SystemConfigChanged"

    public struct Change: Codable, Sendable, Hashable {
        public var from: JSONValue
        public var to: JSONValue

        public init(from: JSONValue, to: JSONValue) {
            self.from = from
            self.to = to
        }
    }

    public var changes: [String: Change]

    public init(changes: [String: Change]) { self.changes = changes }

    public var stream: String { SystemSettings.stream }
}

/// The configuration, the severity thresholds and the rate limits in force: the defaults (the
/// server's own, from its environment) with the changes recorded in `config-system` applied in
/// order.
public struct SystemSettings: Sendable, Hashable {
    public static let stream = "config-system"

    public var config: SystemConfig
    public var thresholds: SeverityThresholds
    public var rateLimits: RateLimits

    public static let defaults = SystemSettings(config: .defaults, thresholds: .defaults)

    public init(config: SystemConfig, thresholds: SeverityThresholds, rateLimits: RateLimits = .defaults) {
        self.config = config
        self.thresholds = thresholds
        self.rateLimits = rateLimits
    }

    /// These settings with `values` applied, by the names the read model keeps them under
    /// (the config's fields, `low_max`, `medium_max`, `high_max`, `rate_limits`).
    public func applying(values: [String: JSONValue]) -> SystemSettings {
        var result = self
        result.config = config.applying(values.filter { SystemConfig.editableFields.contains($0.key) })
        func integer(_ name: String) -> Int? {
            guard case .number(let value)? = values[name], value.rounded() == value else { return nil }
            return Int(value)
        }
        let next = SeverityThresholds(
            lowMax: integer("low_max") ?? thresholds.lowMax, mediumMax: integer("medium_max") ?? thresholds.mediumMax,
            highMax: integer("high_max") ?? thresholds.highMax)
        if next.isValid { result.thresholds = next }
        if let limits = values["rate_limits"], let data = try? EventCoding.encoder.encode(limits),
            let decoded = try? EventCoding.decoder.decode(RateLimits.self, from: data)
        {
            result.rateLimits = decoded
        }
        return result
    }

    /// The values an event sets, by read-model name.
    public static func values(of type: String, data: String) throws -> [String: JSONValue] {
        switch type {
        case SystemConfigChanged.type:
            return try SystemConfigChanged.decode(data).changes.mapValues(\.to)
        case SeverityThresholdsChanged.type:
            let thresholds = try SeverityThresholdsChanged.decode(data).thresholds
            return [
                "low_max": .number(Double(thresholds.lowMax)), "medium_max": .number(Double(thresholds.mediumMax)),
                "high_max": .number(Double(thresholds.highMax)),
            ]
        case RateLimitsChanged.type:
            return ["rate_limits": .object(try RateLimitsChanged.decode(data).limits.fields)]
        default:
            return [:]
        }
    }

    /// These settings with the stream's events (type, data) applied in order.
    public func folding(_ events: [(type: String, data: String)]) throws -> SystemSettings {
        try events.reduce(self) { settings, event in
            settings.applying(values: try Self.values(of: event.type, data: event.data))
        }
    }
}
