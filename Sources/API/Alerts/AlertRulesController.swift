import Domain
import EventStore
import Foundation
import Hummingbird
import Projections

/// `/api/alerts/rules`: list (`enabled`, `severity`), one, create (201), update (PUT: any
/// subset), delete (204). A rule is a stream of its own (`alert-rule-<id>`), changed at its
/// version; its events carry the previous definition, so the audit trail shows old and new
/// values.
struct AlertRulesController<Context: RequestContext> {
    let rules: AlertRulesReadModel
    let candidates: AlertCandidatesReadModel
    let zones: ZonesReadModel
    let store: EventStore
    let appender: GroupCommitAppender
    let readYourWrites: ReadYourWrites

    func addRoutes(to router: Router<Context>) {
        let group = router.group("/api/alerts/rules")
        group.get(use: list)
        group.post(use: create)
        group.get("{rule_id}", use: get)
        group.put("{rule_id}", use: update)
        group.delete("{rule_id}", use: delete)
        group.post("{rule_id}/test", use: test)
    }

    /// `{event_ids?, test_time?, limit?}` (body optional): the rule against stored security events
    /// (those ids, else the newest `limit`, 10, at most 100), at each event's own time or at
    /// `test_time`, with every reason it would not fire. Changes nothing.
    @Sendable func test(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.text("rule_id")
        var ids: [Int64]?
        var testTime: Date?
        var limit = 10
        let buffer = try await request.body.collect(upTo: BodyLimits.json)
        if buffer.readableBytes > 0 {
            try JSONBody.requireJSONContentType(request)
            guard case .object(let object) = try JSONBody.decode(buffer.readableBytesView, under: ["body"]).get() else {
                throw ValidationError(
                    location: ["body"], message: "Input should be a valid dictionary or object to extract fields from",
                    type: "model_attributes_type")
            }
            var body = JSONBody(object: object)
            if let value = body.value("event_ids") {
                let values: [JSONValue]
                if case .array(let array) = value { values = array } else { values = [] }
                let numbers = values.compactMap { value -> Int64? in
                    if case .number(let n) = value, n.rounded() == n, abs(n) < 9e15 { return Int64(n) }
                    return nil
                }
                if numbers.count != values.count || !(1...100).contains(numbers.count) {
                    body.fail("event_ids", "Value error, a list of 1 to 100 integer event ids", "value_error")
                }
                ids = numbers
            }
            if let date = body.dateTime("test_time") { testTime = date }
            limit = body.integer("limit", in: 1...100) ?? 10
            try body.validate()
        }
        guard let rule = try await load(id).0 else { throw APIError.notFound("Alert rule \(id) not found") }
        let areas = try await zones.zones(rule.definition.zoneIds ?? [])
        let events = try await candidates.candidates(ids: ids, limit: ids?.count ?? limit)
        var matched = 0
        var body = JSONWriter()
        body.object { object in
            object.field("rule_id", id)
            object.field("test_time", testTime.map { EventCoding.timestamp($0) })
            object.array("results") { results in
                for var event in events {
                    if let testTime { event.at = testTime }
                    let verdict = AlertMatching.evaluate(rule.definition, event, zones: areas)
                    if verdict.matches { matched += 1 }
                    results.object { result in
                        result.field("event_id", event.eventId)
                        result.field("camera_id", event.cameraId)
                        result.field("risk_score", event.riskScore.map(Int64.init))
                        result.field("would_fire", verdict.matches)
                        result.array("reasons") { reasons in for reason in verdict.reasons { reasons.string(reason) } }
                    }
                }
            }
            object.field("tested", events.count)
            object.field("matched", matched)
        }
        return body.response()
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let query = QueryParameters(request)
        let page = try PageRequest(query, idIsInteger: false)
        let enabled = try query.bool("enabled")
        let severity = try query.choice("severity", AlertSeverity.self)
        return page.response(
            try await rules.list(enabled: enabled, severity: severity?.rawValue, page: page.bounds), key: "rules")
    }

    @Sendable func get(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.text("rule_id")
        return try itemResponse(try await rules.item(id), notFound: "Alert rule \(id) not found")
    }

    @Sendable func create(_ request: Request, context: Context) async throws -> Response {
        var body = try await JSONBody.parse(request, context: context)
        let name = body.string("name", required: true, length: 1...255)
        var rule = AlertRuleDefinition(name: name ?? "")
        Self.read(&body, into: &rule)
        try body.validate()
        let id = UUID.random().uuidString.lowercased()
        try await appender.appendCommand(
            AlertRuleCreated(id: id, rule: rule, createdAt: Date()), expected: .noStream, request: request,
            readYourWrites: readYourWrites, waitFor: ["alert_rules"],
            conflict: APIError.conflict("Alert rule \(id) already exists"))
        return try itemResponse(try await rules.item(id), notFound: "Alert rule \(id) not found", status: .created)
    }

    @Sendable func update(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.text("rule_id")
        var body = try await JSONBody.parse(request, context: context)
        let name = body.string("name", length: 1...255)
        let (current, version) = try await load(id)
        var next = current?.definition ?? AlertRuleDefinition(name: "")
        if let name { next.name = name }
        Self.read(&body, into: &next)
        try body.validate()
        guard let current else { throw APIError.notFound("Alert rule \(id) not found") }
        if next != current.definition {
            try await appender.appendCommand(
                AlertRuleUpdated(id: id, rule: next, previous: current.definition, updatedAt: Date()),
                expected: .exact(version), request: request, readYourWrites: readYourWrites,
                waitFor: ["alert_rules"],
                conflict: APIError.conflict("Alert rule \(id) was changed by another request; retry"))
        } else {
            try await readYourWrites.wait(for: ["alert_rules"], toSee: AlertRule.stream(id), atVersion: version)
        }
        return try itemResponse(try await rules.item(id), notFound: "Alert rule \(id) not found")
    }

    @Sendable func delete(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.text("rule_id")
        let (current, version) = try await load(id)
        guard current != nil else { throw APIError.notFound("Alert rule \(id) not found") }
        try await appender.appendCommand(
            AlertRuleDeleted(id: id, deletedAt: Date()), expected: .exact(version), request: request,
            readYourWrites: readYourWrites, waitFor: ["alert_rules"],
            conflict: APIError.conflict("Alert rule \(id) was changed by another request; retry"))
        return Response(status: .noContent)
    }

    private func load(_ id: String) async throws -> (AlertRule?, Int64) {
        try await store.folded(AlertRule.stream(id), AlertRule.fold)
    }

    /// Every field but `name` that the body has, into `rule` (`null` clears a nullable one).
    static func read(_ body: inout JSONBody, into rule: inout AlertRuleDefinition) {
        if body.isNull("description") {
            rule.description = nil
        } else if let description = body.string("description", length: 0...1000, multiline: true) {
            rule.description = description
        }
        if let enabled = body.bool("enabled") { rule.enabled = enabled }
        if let severity = body.choice("severity", AlertSeverity.self) { rule.severity = severity }
        if body.isNull("risk_threshold") {
            rule.riskThreshold = nil
        } else if let threshold = body.integer("risk_threshold", in: 0...100) {
            rule.riskThreshold = threshold
        }
        for (name, path, length) in [
            ("object_types", \AlertRuleDefinition.objectTypes, 100), ("camera_ids", \.cameraIds, Camera.maxIDLength),
            ("zone_ids", \.zoneIds, 100),
        ] {
            if body.isNull(name) {
                rule[keyPath: path] = nil
            } else if let list = body.stringList(name, count: 0...100, length: 1...length) {
                rule[keyPath: path] = list
            }
        }
        if body.isNull("min_confidence") {
            rule.minConfidence = nil
        } else if let confidence = body.number("min_confidence", in: 0...1) {
            rule.minConfidence = confidence
        }
        if body.isNull("schedule") {
            rule.schedule = nil
        } else if let object = body.object("schedule") {
            var schedule = JSONBody(object: object, location: ["body", "schedule"])
            if let parsed = Self.schedule(&schedule) { rule.schedule = parsed }
            for issue in schedule.issues { body.fail(issue) }
        }
        if let template = body.string("dedup_key_template", length: 1...200) {
            switch AlertRuleDefinition.unknownPlaceholders(template) {
            case nil: body.fail("dedup_key_template", "Value error, unbalanced braces", "value_error")
            case let unknown? where !unknown.isEmpty:
                body.fail(
                    "dedup_key_template",
                    "Value error, unknown placeholder {\(unknown[0])}; a template may name "
                        + AlertRuleDefinition.placeholders.sorted().map { "{\($0)}" }.joined(separator: ", "),
                    "value_error")
            default: rule.dedupKeyTemplate = template
            }
        }
        if let cooldown = body.integer("cooldown_seconds", in: 0...86_400) { rule.cooldownSeconds = cooldown }
        if let channels = body.stringList("channels", count: 0...4, length: 1...20) {
            if let unknown = channels.first(where: { !AlertRuleDefinition.knownChannels.contains($0) }) {
                body.fail(
                    "channels",
                    "Value error, unknown channel '\(unknown)'; one of "
                        + AlertRuleDefinition.knownChannels.joined(separator: ", "), "value_error")
            } else {
                var seen = Set<String>()
                rule.channels = channels.filter { seen.insert($0).inserted }
            }
        }
    }

    /// `{days?, start_time, end_time, timezone?}`: days among mon…sun, times `HH:MM`, a start other
    /// than the end (one after the end wraps midnight), an IANA time zone (UTC).
    static func schedule(_ body: inout JSONBody) -> AlertSchedule? {
        let days = body.stringList("days", count: 1...7, length: 3...3)
        if let days, let bad = days.first(where: { !AlertSchedule.weekdays.contains($0) }) {
            body.fail(
                "days", "Value error, '\(bad)' is not one of " + AlertSchedule.weekdays.joined(separator: ", "),
                "value_error")
        }
        let start = body.string("start_time", required: true, length: 5...5)
        let end = body.string("end_time", required: true, length: 5...5)
        for (name, value) in [("start_time", start), ("end_time", end)] {
            if let value, AlertSchedule.minutes(value) == nil {
                body.fail(name, "Value error, a time is HH:MM, 00:00 to 23:59", "value_error")
            }
        }
        if let start, let end, start == end {
            body.fail("end_time", "Value error, the window is empty: end_time equals start_time", "value_error")
        }
        let timezone = body.timeZone("timezone") ?? "UTC"
        guard body.issues.isEmpty, let start, let end else { return nil }
        return AlertSchedule(
            days: days.map { days in AlertSchedule.weekdays.filter(days.contains) }, startTime: start, endTime: end,
            timezone: timezone)
    }
}
