import Domain
import EventStore
import Foundation
import Hummingbird
import Projections

/// `/api/system/config` and `/api/system/severity`: the settings people change at run time.
///
/// Changes are decided against the `config-system` stream, folded over the server's defaults,
/// and appended with that stream's version as the expected one (two concurrent changes can't
/// both win on stale values). Reads fold the same stream (``SystemSettingsReader``), so once a
/// change has answered, every read on every instance uses the new values.
struct SystemController<Context: RequestContext> {
    let store: EventStore
    /// The severity preview's per-camera score histograms.
    let analytics: AnalyticsReadModel
    let appender: GroupCommitAppender
    let readYourWrites: ReadYourWrites
    let settings: SystemSettingsReader
    let timeTravel: TimeTravel

    func addRoutes(to router: Router<Context>) {
        let system = router.group("/api/system")
        system.get("config", use: config)
        system.patch("config", use: updateConfig)
        system.get("severity", use: severity)
        system.put("severity", use: updateSeverity)
        system.get("severity/preview", use: preview)
        system.get("rate-limits", use: rateLimits)
        system.patch("rate-limits", use: updateRateLimits)
    }

    // MARK: Rate limits

    @Sendable func rateLimits(_ request: Request, context: Context) async throws -> Response {
        try await read(request) { Self.rateLimitsResponse($0.rateLimits, extra: $1) }
    }

    /// The settings in force, or with `as_of` as they were then (with the `as_of` object).
    private func read(
        _ request: Request,
        _ respond: (SystemSettings, (inout JSONWriter.ObjectWriter) -> Void) -> Response
    ) async throws -> Response {
        guard let asOf = try AsOf(QueryParameters(request)) else {
            return respond(try await settings.current()) { _ in }
        }
        let folded = try await asOf.read { try await timeTravel.settings(at: $0) }
        return respond(folded.value) { asOf.write(folded, into: &$0) }
    }

    /// Any subset of `enabled` and the tiers' limits (requests per window per client address).
    @Sendable func updateRateLimits(_ request: Request, context: Context) async throws -> Response {
        let metadata = EventMetadata(request)
        var body = try await JSONBody.parse(request, context: context)
        let enabled = body.bool("enabled")
        let limits = RateLimitTier.allCases.map { ($0, body.integer($0.rawValue, in: RateLimits.range)) }
        try body.validate()

        let (current, version) = try await settings.load()
        var next = current.rateLimits
        if let enabled { next.enabled = enabled }
        for case (let tier, let value?) in limits { next.set(tier, value) }
        if next != current.rateLimits {
            try await append(
                RateLimitsChanged(next, previous: current.rateLimits), version: version, request: request,
                metadata: metadata)
        }
        return Self.rateLimitsResponse(next)
    }

    static func rateLimitsResponse(
        _ limits: RateLimits, extra: (inout JSONWriter.ObjectWriter) -> Void = { _ in }
    ) -> Response {
        var body = JSONWriter()
        body.object { object in
            object.field("enabled", limits.enabled)
            for tier in RateLimitTier.allCases { object.field(tier.rawValue, limits.limit(tier)) }
            extra(&object)
        }
        return body.response()
    }

    // MARK: Configuration

    @Sendable func config(_ request: Request, context: Context) async throws -> Response {
        try await read(request) { Self.configResponse($0.config, extra: $1) }
    }

    /// Any subset of the editable fields; `app_name` and `version` are accepted and ignored
    /// (a client may send back what it read), any other field is a 422.
    @Sendable func updateConfig(_ request: Request, context: Context) async throws -> Response {
        let metadata = EventMetadata(request)
        var body = try await JSONBody.parse(request, context: context)
        body.ignore(["app_name", "version"])
        let retention = body.integer("retention_days", in: 1...365)
        let window = body.integer("batch_window_seconds", in: 1...86_400)
        let idle = body.integer("batch_idle_timeout_seconds", in: 1...86_400)
        let confidence = body.number("detection_confidence_threshold", in: 0...1)
        let fastPathConfidence = body.number("fast_path_confidence_threshold", in: 0...1)
        let fastPathTypes = body.stringList("fast_path_object_types", count: 0...50, length: 1...50)
        try body.validate()

        let (current, version) = try await settings.load()
        var next = current.config
        if let retention { next.retentionDays = retention }
        if let window { next.batchWindowSeconds = window }
        if let idle { next.batchIdleTimeoutSeconds = idle }
        if let confidence { next.detectionConfidenceThreshold = confidence }
        if let fastPathConfidence { next.fastPathConfidenceThreshold = fastPathConfidence }
        if let fastPathTypes {
            // Order kept, repeats dropped.
            var seen = Set<String>()
            next.fastPathObjectTypes = fastPathTypes.filter { seen.insert($0).inserted }
        }
        let changes = current.config.changes(to: next)
        if !changes.isEmpty {
            try await append(
                SystemConfigChanged(changes: changes), version: version, request: request, metadata: metadata)
        }
        return Self.configResponse(next)
    }

    static func configResponse(
        _ config: SystemConfig, extra: (inout JSONWriter.ObjectWriter) -> Void = { _ in }
    ) -> Response {
        let fields = config.fields
        var body = JSONWriter()
        body.object { object in
            for name in ["app_name", "version"] + SystemConfig.editableFields {
                object.raw(name, json: Self.json(fields[name] ?? .null))
            }
            extra(&object)
        }
        return body.response()
    }

    private static func json(_ value: JSONValue) -> String {
        String(decoding: (try? JSONEncoder().encode(value)) ?? Data("null".utf8), as: UTF8.self)
    }

    // MARK: Severity

    @Sendable func severity(_ request: Request, context: Context) async throws -> Response {
        try await read(request) { Self.severityResponse($0.thresholds, extra: $1) }
    }

    @Sendable func updateSeverity(_ request: Request, context: Context) async throws -> Response {
        let metadata = EventMetadata(request)
        var body = try await JSONBody.parse(request, context: context)
        let lowMax = body.integer("low_max", required: true, in: 0...100)
        let mediumMax = body.integer("medium_max", required: true, in: 0...100)
        let highMax = body.integer("high_max", required: true, in: 0...100)
        try body.validate()
        guard let lowMax, let mediumMax, let highMax else { return Response(status: .unprocessableContent) }
        let thresholds = try Self.ordered(SeverityThresholds(lowMax: lowMax, mediumMax: mediumMax, highMax: highMax))

        // Decided again when the settings changed between the read and the append (up to three
        // times): the same thresholds PUT from two consoles at once are both a 200 (once all
        // but one were 409s), and a PUT replaces them whole, whatever came in between.
        try await decidingAgainOnConflict {
            let (current, version) = try await settings.load()
            guard thresholds != current.thresholds else { return }
            try await append(
                SeverityThresholdsChanged(thresholds, previous: current.thresholds), version: version,
                request: request, metadata: metadata)
        }
        return Self.severityResponse(thresholds)
    }

    static func ordered(_ thresholds: SeverityThresholds) throws -> SeverityThresholds {
        guard thresholds.isValid else {
            throw APIError.badRequest("Thresholds must be strictly ordered: low_max < medium_max < high_max")
        }
        return thresholds
    }

    static var levels: [(level: RiskLevel, label: String, description: String, color: String, priority: Int)] {
        [
            (.low, "Low", "Routine activity; nothing to do", "#22c55e", 3),
            (.medium, "Medium", "Unusual activity worth a look", "#eab308", 2),
            (.high, "High", "Suspicious activity; review soon", "#f97316", 1),
            (.critical, "Critical", "Likely threat; act now", "#ef4444", 0),
        ]
    }

    /// `{definitions: [{severity, label, description, color, priority, min_score, max_score}],
    /// thresholds}`; a level with no scores (critical when `high_max` is 100) has null bounds.
    static func severityResponse(
        _ thresholds: SeverityThresholds, extra: (inout JSONWriter.ObjectWriter) -> Void = { _ in }
    ) -> Response {
        var body = JSONWriter()
        body.object { object in
            object.array("definitions") { definitions in
                for level in levels {
                    definitions.object { item in
                        item.field("severity", level.level.rawValue)
                        item.field("label", level.label)
                        item.field("description", level.description)
                        item.field("color", level.color)
                        item.field("priority", level.priority)
                        let scores = thresholds.scores(of: level.level)
                        item.field("min_score", scores.map { Int64($0.lowerBound) })
                        item.field("max_score", scores.map { Int64($0.upperBound) })
                    }
                }
            }
            object.object("thresholds") { thresholds.write(to: &$0) }
            extra(&object)
        }
        return body.response()
    }

    // MARK: What-if

    /// `GET /api/system/severity/preview?low_max=&medium_max=&high_max=` (an absent one keeps
    /// its value in force): per level, how many analyzed events it holds now and would hold
    /// under the proposal, how many events would change level (by transition and per camera).
    /// Computed over all history from the analytics read model's per-camera score histogram
    /// (at most 101 rows per camera), so it costs the same for a thousand events or a billion.
    @Sendable func preview(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let current = try await settings.current().thresholds
        let proposed = try Self.ordered(
            SeverityThresholds(
                lowMax: try query.integer("low_max", default: current.lowMax, in: 0...100),
                mediumMax: try query.integer("medium_max", default: current.mediumMax, in: 0...100),
                highMax: try query.integer("high_max", default: current.highMax, in: 0...100)))

        var preview = SeverityPreview(current: current, proposed: proposed)
        for total in try await analytics.scoreTotals() {
            preview.add(camera: total.camera, name: total.cameraName, score: total.score, events: total.events)
        }
        var body = JSONWriter()
        body.object { preview.write(to: &$0) }
        return body.response()
    }

    // MARK: Commands

    private func append(
        _ event: some DomainEvent, version: Int64, request: Request, metadata: EventMetadata
    ) async throws {
        try await appender.appendCommand(
            event, expected: version == 0 ? .noStream : .exact(version), request: request, metadata: metadata,
            readYourWrites: readYourWrites, waitFor: [],
            conflict: APIError(.conflict, "System settings were changed by another request; retry"))
    }
}

/// Counts per level under the thresholds in force and under proposed ones.
struct SeverityPreview {
    struct Counts {
        var current: [RiskLevel: Int] = [:]
        var proposed: [RiskLevel: Int] = [:]
        var total = 0
        var changed = 0
    }

    let current: SeverityThresholds
    let proposed: SeverityThresholds
    var all = Counts()
    var cameras: [(id: String, name: String, counts: Counts)] = []
    var transitions: [RiskLevel: [RiskLevel: Int]] = [:]

    init(current: SeverityThresholds, proposed: SeverityThresholds) {
        self.current = current
        self.proposed = proposed
    }

    /// Adds `events` events of `camera` scored `score` (rows of one camera come together).
    mutating func add(camera: String, name: String, score: Int, events: Int) {
        if cameras.last?.id != camera { cameras.append((camera, name, Counts())) }
        let from = current.level(score)
        let to = proposed.level(score)
        func count(_ counts: inout Counts) {
            counts.current[from, default: 0] += events
            counts.proposed[to, default: 0] += events
            counts.total += events
            if from != to { counts.changed += events }
        }
        count(&all)
        count(&cameras[cameras.count - 1].counts)
        if from != to { transitions[from, default: [:]][to, default: 0] += events }
    }

    func write(to object: inout JSONWriter.ObjectWriter) {
        object.object("current") { current.write(to: &$0) }
        object.object("proposed") { proposed.write(to: &$0) }
        Self.write(all, to: &object)
        object.array("transitions") { array in
            for from in RiskLevel.allCases {
                for to in RiskLevel.allCases {
                    guard let count = transitions[from]?[to] else { continue }
                    array.object { item in
                        item.field("from", from.rawValue)
                        item.field("to", to.rawValue)
                        item.field("count", count)
                    }
                }
            }
        }
        object.array("cameras") { array in
            for camera in cameras {
                array.object { item in
                    item.field("camera_id", camera.id)
                    item.field("camera_name", camera.name)
                    Self.write(camera.counts, to: &item)
                }
            }
        }
    }

    /// `total_events`, `changed_events`, `levels: {low: {current, proposed, difference}, …}`.
    private static func write(_ counts: Counts, to object: inout JSONWriter.ObjectWriter) {
        object.field("total_events", counts.total)
        object.field("changed_events", counts.changed)
        object.object("levels") { levels in
            for level in RiskLevel.allCases {
                let (now, then) = (counts.current[level] ?? 0, counts.proposed[level] ?? 0)
                levels.object(level.rawValue) { item in
                    item.field("current", now)
                    item.field("proposed", then)
                    item.field("difference", then - now)
                }
            }
        }
    }
}

extension SeverityThresholds {
    /// `low_max`, `medium_max`, `high_max`.
    func write(to object: inout JSONWriter.ObjectWriter) {
        object.field("low_max", lowMax)
        object.field("medium_max", mediumMax)
        object.field("high_max", highMax)
    }
}
