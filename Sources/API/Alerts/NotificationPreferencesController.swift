import Domain
import EventStore
import Foundation
import Hummingbird
import Projections

/// The two path families of the notification preferences (the seeds use both).
let notificationPreferenceFamilies = ["/api/notification-preferences", "/api/notifications/preferences"]

/// Notification preferences, under both path families the seeds use
/// (`/api/notification-preferences/…` and `/api/notifications/preferences/…`), one
/// implementation; PUT and PATCH alike take any subset of the fields.
///
/// - global: `{enabled, sound, risk_filters}`;
/// - per camera: `{id, camera_id, enabled, risk_threshold}` (a camera never set has the
///   defaults: enabled, any score);
/// - quiet hours: `{id, label, start_time, end_time, days, timezone}`, which may wrap midnight.
///
/// Every change is an event with its previous value (the audit trail shows old and new); the
/// webhook deliverer obeys them (``NotificationPolicy``).
struct NotificationPreferencesController<Context: RequestContext> {
    let notifications: NotificationsReadModel
    let cameras: CamerasReadModel
    let store: EventStore
    let appender: GroupCommitAppender
    let readYourWrites: ReadYourWrites

    func addRoutes(to router: Router<Context>) {
        for family in notificationPreferenceFamilies {
            let group = router.group(RouterPath(family))
            group.get(use: preferences)
            group.put(use: changePreferences)
            group.patch(use: changePreferences)
            group.get("cameras", use: cameraList)
            group.get("cameras/{camera_id}", use: camera)
            group.put("cameras/{camera_id}", use: changeCamera)
            group.patch("cameras/{camera_id}", use: changeCamera)
            group.get("quiet-hours", use: quietHoursList)
            group.post("quiet-hours", use: createQuietHours)
            group.get("quiet-hours/{quiet_hours_id}", use: quietHours)
            group.put("quiet-hours/{quiet_hours_id}", use: updateQuietHours)
            group.delete("quiet-hours/{quiet_hours_id}", use: deleteQuietHours)
        }
    }

    // MARK: - Global

    @Sendable func preferences(_ request: Request, context: Context) async throws -> Response {
        try Self.response(try await notifications.preferences())
    }

    /// `{enabled?, sound?, risk_filters?}` (risk levels, each once).
    @Sendable func changePreferences(_ request: Request, context: Context) async throws -> Response {
        var body = try await JSONBody.parse(request, context: context)
        let (folded, version) = try await store.folded(
            NotificationPreferencesChanged.streamName, NotificationPreferencesChanged.fold)
        let current = folded ?? .defaults
        var next = current
        if let enabled = body.bool("enabled") { next.enabled = enabled }
        if let sound = body.choice("sound", NotificationSound.self) { next.sound = sound }
        if let filters = body.stringList("risk_filters", count: 0...4, length: 1...20) {
            let levels = filters.compactMap(RiskLevel.init(rawValue:))
            if levels.count != filters.count {
                body.fail(
                    "risk_filters",
                    "Value error, risk levels are " + JSONBody.alternatives(RiskLevel.allCases.map(\.rawValue)),
                    "value_error")
            }
            next.riskFilters = RiskLevel.allCases.filter(levels.contains)
        }
        try body.validate()
        if next != current {
            try await appender.appendCommand(
                NotificationPreferencesChanged(preferences: next, previous: current, changedAt: Date()),
                expected: version == 0 ? .noStream : .exact(version), request: request, readYourWrites: readYourWrites,
                waitFor: ["notifications"],
                conflict: APIError.conflict("The notification preferences were changed by another request; retry"))
        } else {
            try await readYourWrites.wait(
                for: ["notifications"], toSee: NotificationPreferencesChanged.streamName, atVersion: version)
        }
        return try Self.response(try await notifications.preferences())
    }

    static func response(_ preferences: NotificationPreferences) throws -> Response {
        jsonResponse(String(decoding: try EventCoding.encoder.encode(preferences), as: UTF8.self))
    }

    // MARK: - Cameras

    @Sendable func cameraList(_ request: Request, context: Context) async throws -> Response {
        let page = try PageRequest(QueryParameters(request), idIsInteger: false)
        return page.response(try await notifications.cameraSettings(page: page.bounds), key: "settings")
    }

    @Sendable func camera(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.text("camera_id")
        try await requireCamera(id)
        return try Self.response(camera: id, try await notifications.cameraSetting(id))
    }

    /// `{enabled?, risk_threshold?}` (0–100, `null`: any score).
    @Sendable func changeCamera(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.text("camera_id")
        var body = try await JSONBody.parse(request, context: context)
        let (folded, version) = try await store.folded(
            CameraNotificationSettingChanged.stream(id), CameraNotificationSettingChanged.fold)
        let current = folded ?? .defaults
        var next = current
        if let enabled = body.bool("enabled") { next.enabled = enabled }
        if body.isNull("risk_threshold") {
            next.riskThreshold = nil
        } else if let threshold = body.integer("risk_threshold", in: 0...100) {
            next.riskThreshold = threshold
        }
        try body.validate()
        try await requireCamera(id)
        if next != current || version == 0 {
            try await appender.appendCommand(
                CameraNotificationSettingChanged(cameraId: id, setting: next, previous: current, changedAt: Date()),
                expected: version == 0 ? .noStream : .exact(version), request: request, readYourWrites: readYourWrites,
                waitFor: ["notifications"],
                conflict: APIError.conflict("Camera \(id)'s notification setting was changed by another request; retry")
            )
        } else {
            try await readYourWrites.wait(
                for: ["notifications"], toSee: CameraNotificationSettingChanged.stream(id), atVersion: version)
        }
        return try Self.response(camera: id, try await notifications.cameraSetting(id))
    }

    private func requireCamera(_ id: String) async throws {
        guard try await cameras.item(id) != nil else { throw APIError.notFound("Camera \(id) not found") }
    }

    static func response(camera: String, _ setting: CameraNotificationSetting) throws -> Response {
        var writer = JSONWriter()
        writer.object { object in
            object.field("id", camera)
            object.field("camera_id", camera)
            object.field("enabled", setting.enabled)
            object.field("risk_threshold", setting.riskThreshold.map(Int64.init))
        }
        return writer.response()
    }

    // MARK: - Quiet hours

    @Sendable func quietHoursList(_ request: Request, context: Context) async throws -> Response {
        let page = try PageRequest(QueryParameters(request), idIsInteger: false)
        return page.response(try await notifications.quietHours(page: page.bounds), key: "quiet_hours")
    }

    @Sendable func quietHours(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.text("quiet_hours_id")
        return try itemResponse(
            try await notifications.quietHoursItem(id), notFound: "Quiet hours \(id) not found")
    }

    @Sendable func createQuietHours(_ request: Request, context: Context) async throws -> Response {
        var body = try await JSONBody.parse(request, context: context)
        var period = QuietHours(label: "", startTime: "", endTime: "", days: QuietHours.weekdays)
        Self.read(&body, into: &period, creating: true)
        try body.validate()
        let id = UUID.random().uuidString.lowercased()
        try await appender.appendCommand(
            QuietHoursSet(id: id, period: period, previous: nil, setAt: Date()), expected: .noStream,
            request: request, readYourWrites: readYourWrites, waitFor: ["notifications"],
            conflict: APIError.conflict("Quiet hours \(id) already exist"))
        return try itemResponse(
            try await notifications.quietHoursItem(id), notFound: "Quiet hours \(id) not found", status: .created)
    }

    @Sendable func updateQuietHours(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.text("quiet_hours_id")
        var body = try await JSONBody.parse(request, context: context)
        let (current, version) = try await store.folded(QuietHoursSet.stream(id), QuietHoursSet.fold)
        var next = current ?? QuietHours(label: "", startTime: "00:00:00", endTime: "01:00:00", days: [])
        Self.read(&body, into: &next, creating: false)
        try body.validate()
        guard let current else { throw APIError.notFound("Quiet hours \(id) not found") }
        if next != current {
            try await appender.appendCommand(
                QuietHoursSet(id: id, period: next, previous: current, setAt: Date()), expected: .exact(version),
                request: request, readYourWrites: readYourWrites, waitFor: ["notifications"],
                conflict: APIError.conflict("Quiet hours \(id) were changed by another request; retry"))
        } else {
            try await readYourWrites.wait(for: ["notifications"], toSee: QuietHoursSet.stream(id), atVersion: version)
        }
        return try itemResponse(try await notifications.quietHoursItem(id), notFound: "Quiet hours \(id) not found")
    }

    @Sendable func deleteQuietHours(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.text("quiet_hours_id")
        let (current, version) = try await store.folded(QuietHoursSet.stream(id), QuietHoursSet.fold)
        guard current != nil else { throw APIError.notFound("Quiet hours \(id) not found") }
        try await appender.appendCommand(
            QuietHoursDeleted(id: id, deletedAt: Date()), expected: .exact(version), request: request,
            readYourWrites: readYourWrites, waitFor: ["notifications"],
            conflict: APIError.conflict("Quiet hours \(id) were changed by another request; retry"))
        return Response(status: .noContent)
    }

    /// `{label, start_time, end_time, days?, timezone?}` (all required when `creating` but
    /// `days`, every day, and `timezone`, UTC): times `HH:MM[:SS]`, the start other than the end
    /// (a start after the end wraps midnight), days `monday` … `sunday` (or `mon` … `sun`).
    static func read(_ body: inout JSONBody, into period: inout QuietHours, creating: Bool) {
        if let label = body.string("label", required: creating, length: 1...255) { period.label = label }
        for (name, path) in [("start_time", \QuietHours.startTime), ("end_time", \.endTime)] {
            guard let text = body.string(name, required: creating, length: 4...8) else { continue }
            if let time = QuietHours.normalized(text) {
                period[keyPath: path] = time
            } else {
                body.fail(name, "Value error, a time is HH:MM or HH:MM:SS, 00:00 to 23:59:59", "value_error")
            }
        }
        if let days = body.stringList("days", count: 1...7, length: 3...9) {
            let full = days.map { day in QuietHours.weekdays.first { $0 == day || $0.prefix(3) == day } }
            if let bad = full.firstIndex(where: { $0 == nil }) {
                body.fail(
                    "days", "Value error, '\(days[bad])' is not one of " + QuietHours.weekdays.joined(separator: ", "),
                    "value_error")
            } else {
                period.days = QuietHours.weekdays.filter { full.contains($0) }
            }
        }
        if let timezone = body.timeZone("timezone") { period.timezone = timezone }
        if body.issues.isEmpty, !period.startTime.isEmpty, period.startTime == period.endTime {
            body.fail("end_time", "Value error, the period is empty: end_time equals start_time", "value_error")
        }
    }
}
