import Domain
import Foundation
import Testing

/// Quiet hours and the rest of what decides whether an alert is delivered.
@Suite struct NotificationPolicyTests {
    static func at(_ text: String) -> Date { EventCoding.parseTimestamp(text)! }

    @Test("Quiet hours across midnight belong to the day they start on, in their time zone")
    func quietHoursWrap() {
        // Monday and Friday nights, 22:00 to 06:30, Berlin (UTC+1 in November).
        let night = QuietHours(
            label: "night", startTime: "22:00:00", endTime: "06:30:00", days: ["monday", "friday"],
            timezone: "Europe/Berlin")
        #expect(night.holds(Self.at("2026-11-23T21:00:00Z")))  // Mon 22:00 Berlin
        #expect(!night.holds(Self.at("2026-11-23T20:59:59Z")))  // Mon 21:59:59
        #expect(night.holds(Self.at("2026-11-24T05:29:59Z")))  // Tue 06:29:59, Monday's night
        #expect(!night.holds(Self.at("2026-11-24T05:30:00Z")))  // Tue 06:30: over
        #expect(!night.holds(Self.at("2026-11-24T21:30:00Z")))  // Tue 22:30: not a Tuesday period
        #expect(!night.holds(Self.at("2026-11-29T01:00:00Z")))  // Sun 02:00: Saturday has no period
        #expect(night.holds(Self.at("2026-11-28T04:00:00Z")))  // Sat 05:00, Friday's night
    }

    @Test("A daytime period holds only its own days' hours")
    func quietHoursDay() {
        let lunch = QuietHours(label: "lunch", startTime: "12:00:00", endTime: "13:00:00", days: ["sunday"])
        #expect(lunch.holds(Self.at("2026-11-29T12:30:00Z")))  // Sunday, UTC
        #expect(!lunch.holds(Self.at("2026-11-29T13:00:00Z")))
        #expect(!lunch.holds(Self.at("2026-11-30T12:30:00Z")))  // Monday
        #expect(QuietHours.normalized("7:00") == nil)
        #expect(QuietHours.normalized("07:00") == "07:00:00")
        #expect(QuietHours.normalized("23:59:59") == "23:59:59")
        #expect(QuietHours.normalized("24:00") == nil)
    }

    @Test("Off, a risk filter, the camera's setting and quiet hours each suppress, with the reason")
    func suppression() {
        let noon = Self.at("2026-11-29T12:30:00Z")
        let open = NotificationPreferences.defaults
        func reason(
            _ preferences: NotificationPreferences = .defaults, camera: CameraNotificationSetting = .defaults,
            quiet: [QuietHours] = [], level: RiskLevel = .high, score: Int = 70
        ) -> String? {
            NotificationPolicy.suppression(
                level: level, score: score, at: noon, preferences: preferences, camera: camera, quietHours: quiet)
        }
        #expect(reason() == nil)
        var off = open
        off.enabled = false
        #expect(reason(off) == "notifications are off")
        var critical = open
        critical.riskFilters = [.critical]
        #expect(reason(critical) == "risk level high is filtered out")
        #expect(reason(critical, level: .critical) == nil)
        #expect(reason(camera: .init(enabled: false, riskThreshold: nil)) == "notifications are off for this camera")
        #expect(
            reason(camera: .init(enabled: true, riskThreshold: 80))
                == "risk score 70 is below the camera's threshold 80")
        let lunch = QuietHours(label: "lunch", startTime: "12:00:00", endTime: "13:00:00", days: QuietHours.weekdays)
        #expect(reason(quiet: [lunch]) == "quiet hours: lunch")
    }
}
