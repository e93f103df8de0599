import Domain
import Foundation
import Testing

/// Rule matching, condition by condition and combined: the table behind the rule engine and the
/// rules' test route.
@Suite struct AlertMatchingTests {
    static func at(_ text: String) -> Date { EventCoding.parseTimestamp(text)! }

    /// A candidate on Monday 2026-11-30 23:00 UTC unless told otherwise.
    static func candidate(
        camera: String = "front_door", score: Int? = 70, at: String = "2026-11-30T23:00:00Z",
        _ detections: [AlertCandidate.Detection] = [.init(objectType: "person", confidence: 0.9, centre: (0.5, 0.5))]
    ) -> AlertCandidate {
        AlertCandidate(eventId: 1, cameraId: camera, riskScore: score, at: Self.at(at), detections: detections)
    }

    static func rule(_ change: (inout AlertRuleDefinition) -> Void = { _ in }) -> AlertRuleDefinition {
        var rule = AlertRuleDefinition(name: "r")
        change(&rule)
        return rule
    }

    static func matches(_ rule: AlertRuleDefinition, _ candidate: AlertCandidate, zones: [String: Zone] = [:]) -> Bool {
        AlertMatching.evaluate(rule, candidate, zones: zones).matches
    }

    @Test("Each condition alone")
    func eachCondition() {
        #expect(Self.matches(Self.rule(), Self.candidate()))
        #expect(!Self.matches(Self.rule { $0.enabled = false }, Self.candidate()))
        // Risk: score ≥ threshold; an event not analyzed yet has none.
        #expect(Self.matches(Self.rule { $0.riskThreshold = 70 }, Self.candidate(score: 70)))
        #expect(!Self.matches(Self.rule { $0.riskThreshold = 71 }, Self.candidate(score: 70)))
        #expect(!Self.matches(Self.rule { $0.riskThreshold = 0 }, Self.candidate(score: nil)))
        // Cameras, object types, confidence.
        #expect(Self.matches(Self.rule { $0.cameraIds = ["front_door", "garage"] }, Self.candidate()))
        #expect(!Self.matches(Self.rule { $0.cameraIds = ["garage"] }, Self.candidate()))
        #expect(!Self.matches(Self.rule { $0.cameraIds = [] }, Self.candidate()))
        #expect(Self.matches(Self.rule { $0.objectTypes = ["car", "person"] }, Self.candidate()))
        #expect(!Self.matches(Self.rule { $0.objectTypes = ["car"] }, Self.candidate()))
        #expect(Self.matches(Self.rule { $0.minConfidence = 0.9 }, Self.candidate()))
        #expect(!Self.matches(Self.rule { $0.minConfidence = 0.91 }, Self.candidate()))
    }

    @Test("One detection must hold every detection condition together")
    func oneDetectionHoldsThemAll() {
        let mixed = Self.candidate([
            .init(objectType: "person", confidence: 0.5, centre: (0.9, 0.9)),
            .init(objectType: "car", confidence: 0.95, centre: (0.5, 0.5)),
        ])
        // A person, and a confident detection, but no confident person.
        #expect(
            !Self.matches(
                Self.rule {
                    $0.objectTypes = ["person"]; $0.minConfidence = 0.7
                }, mixed))
        #expect(
            Self.matches(
                Self.rule {
                    $0.objectTypes = ["car"]; $0.minConfidence = 0.7
                }, mixed))
        let verdict = AlertMatching.evaluate(
            Self.rule {
                $0.objectTypes = ["person"]; $0.minConfidence = 0.7; $0.riskThreshold = 90
            }, mixed)
        #expect(verdict.reasons.count == 2, "\(verdict.reasons)")
    }

    @Test("Zones: a detection's centre inside an enabled zone of the event's camera")
    func zones() {
        let door = Zone(
            id: "door", cameraId: "front_door",
            definition: ZoneDefinition(
                name: "door", coordinates: [[0.4, 0.4], [0.6, 0.4], [0.6, 0.6], [0.4, 0.6]]),
            createdAt: Date(), updatedAt: Date())
        let triangle = Zone(
            id: "path", cameraId: "front_door",
            definition: ZoneDefinition(
                name: "path", coordinates: [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], shape: .polygon),
            createdAt: Date(), updatedAt: Date())
        var disabled = door
        disabled.definition.enabled = false
        var elsewhere = door
        elsewhere.cameraId = "garage"
        let zones = ["door": door, "path": triangle, "off": disabled, "garage-door": elsewhere]
        func at(_ x: Double, _ y: Double) -> AlertCandidate {
            Self.candidate([.init(objectType: "person", confidence: 0.9, centre: (x, y))])
        }
        #expect(Self.matches(Self.rule { $0.zoneIds = ["door"] }, at(0.5, 0.5), zones: zones))
        #expect(!Self.matches(Self.rule { $0.zoneIds = ["door"] }, at(0.7, 0.5), zones: zones))
        #expect(Self.matches(Self.rule { $0.zoneIds = ["path"] }, at(0.2, 0.2), zones: zones))
        #expect(!Self.matches(Self.rule { $0.zoneIds = ["path"] }, at(0.8, 0.8), zones: zones))
        #expect(!Self.matches(Self.rule { $0.zoneIds = ["off"] }, at(0.5, 0.5), zones: zones))
        #expect(!Self.matches(Self.rule { $0.zoneIds = ["garage-door"] }, at(0.5, 0.5), zones: zones))
        #expect(!Self.matches(Self.rule { $0.zoneIds = ["missing"] }, at(0.5, 0.5), zones: zones))
        #expect(Self.matches(Self.rule { $0.zoneIds = ["off", "door"] }, at(0.5, 0.5), zones: zones))
        // The frame's size unknown: no zone can hold it.
        let unknown = Self.candidate([.init(objectType: "person", confidence: 0.9, centre: nil)])
        #expect(!Self.matches(Self.rule { $0.zoneIds = ["door"] }, unknown, zones: zones))
        // An empty list names no zone: no zone condition.
        #expect(Self.matches(Self.rule { $0.zoneIds = [] }, unknown, zones: zones))
    }

    @Test(
        "Schedules: days and hours, across midnight, in a time zone",
        arguments: [
            // Monday 22:00–06:00 UTC (2026-11-30 is a Monday).
            ("2026-11-30T23:00:00Z", "UTC", true),
            ("2026-12-01T03:00:00Z", "UTC", true),  // Tuesday early: Monday's window
            ("2026-12-01T06:00:00Z", "UTC", false),  // the end is not in it
            ("2026-11-30T21:59:00Z", "UTC", false),
            ("2026-11-30T03:00:00Z", "UTC", false),  // Monday early: Sunday's window, not on
            ("2026-12-01T23:00:00Z", "UTC", false),  // Tuesday night: not on
            // Europe/Paris is UTC+1 in winter: 21:30Z is 22:30 there, 05:30Z is 06:30.
            ("2026-11-30T21:30:00Z", "Europe/Paris", true),
            ("2026-12-01T05:30:00Z", "Europe/Paris", false),
            ("2026-12-01T04:30:00Z", "Europe/Paris", true),
        ])
    func schedules(_ time: String, _ zone: String, _ expected: Bool) {
        let rule = Self.rule {
            $0.schedule = AlertSchedule(days: ["mon"], startTime: "22:00", endTime: "06:00", timezone: zone)
        }
        #expect(Self.matches(rule, Self.candidate(at: time)) == expected)
    }

    @Test("A daytime window, every day when no days are given")
    func daytime() {
        let rule = Self.rule { $0.schedule = AlertSchedule(days: nil, startTime: "08:30", endTime: "17:00") }
        #expect(Self.matches(rule, Self.candidate(at: "2026-12-05T08:30:00Z")))
        #expect(Self.matches(rule, Self.candidate(at: "2026-12-06T16:59:00Z")))
        #expect(!Self.matches(rule, Self.candidate(at: "2026-12-06T17:00:00Z")))
        #expect(!Self.matches(rule, Self.candidate(at: "2026-12-06T08:29:00Z")))
    }

    @Test("Dedup key templates: known placeholders only, balanced braces")
    func templates() {
        #expect(AlertRuleDefinition.unknownPlaceholders("{camera_id}:{rule_id}") == [])
        #expect(AlertRuleDefinition.unknownPlaceholders("night-{camera_id}-{weather}") == ["weather"])
        #expect(AlertRuleDefinition.unknownPlaceholders("{camera_id") == nil)
        #expect(AlertRuleDefinition.unknownPlaceholders("camera_id}") == nil)
        #expect(AlertSchedule.minutes("23:59") == 1439 && AlertSchedule.minutes("24:00") == nil)
        #expect(AlertSchedule.minutes("7:00") == nil && AlertSchedule.minutes("07:0a") == nil)
    }
}
