import Domain
import Foundation
import Testing

/// How events become audit entries (``AuditEntry``), without a database.
@Suite struct AuditEntryTests {
    @Test("a rate-limit change lists exactly the limits that changed, old and new")
    func rateLimitsChanged() throws {
        var limits = RateLimits.defaults
        limits.enabled = true
        limits.standard = 5
        let event = RateLimitsChanged(limits, previous: .defaults)
        let entry = try #require(try AuditEntry.of(type: RateLimitsChanged.type, data: try event.encodedData()))
        #expect(entry.action == "settings_changed" && entry.resourceType == "rate_limits")
        #expect(entry.resourceId == "rate_limits" && entry.status == .success)
        #expect(
            entry.details["changes"]
                == .object([
                    "enabled": .object(["old": .bool(false), "new": .bool(true)]),
                    "standard": .object(["old": .number(600), "new": .number(5)]),
                ]))
    }

    @Test("a second review's old values are the first one's; a field it leaves alone is not a change")
    func reviewsChainTheirOldValues() {
        let (first, afterFirst) = AuditEntry.review(
            SecurityEventReviewed(id: 3, reviewed: true, notes: .some("Courier")), old: .init())
        #expect(
            first.details["changes"]
                == .object([
                    "reviewed": .object(["old": .bool(false), "new": .bool(true)]),
                    "notes": .object(["old": .null, "new": .string("Courier")]),
                ]))
        let (second, afterSecond) = AuditEntry.review(
            SecurityEventReviewed(id: 3, reviewed: true, notes: .some(nil)), old: afterFirst)
        #expect(second.details["changes"] == .object(["notes": .object(["old": .string("Courier"), "new": .null])]))
        #expect(afterSecond == .init(reviewed: true, notes: nil))
    }
}
