import Domain
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing
import VigilTesting

@testable import API

/// Each key's usage counters, shown by `/api/api-keys`: counted per request, saved in the background.
@Suite struct KeyUsageTests {
    static let root = AuthTests.root

    @Test("a key's requests and refusals are counted, with when it was last used; a wrong secret counts for nothing")
    func usageIsCounted() async throws {
        try await withApp(configure: {
            $0.adminKey = Self.root
            $0.keyUsageInterval = .milliseconds(100)
        }) { _, client in
            let carol = try await client.issueKey("carol", role: .viewer, adminKey: Self.root)
            _ = try await client.issueKey("dave", role: .viewer, adminKey: Self.root)
            let before = Date()
            for _ in 0..<3 { #expect(try await client.call(.get, "/api/events", key: carol).status == .ok) }
            let thresholds = #"{"low_max": 20, "medium_max": 45, "high_max": 70}"#
            #expect(
                try await client.call(.put, "/api/system/severity", key: carol, json: thresholds).status == .forbidden)
            let wrong = String(carol.prefix { $0 != "." }) + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            #expect(try await client.call(.get, "/api/events", key: wrong).status == .unauthorized)

            var usage: [String: Any] = [:]
            try await waitUntil("carol's usage is saved") {
                let item = try json(try await client.call(.get, "/api/api-keys/carol", key: Self.root))
                usage = item["usage"] as? [String: Any] ?? [:]
                return usage["requests"] as? Int == 4
            }
            #expect(usage["refused"] as? Int == 1)
            let last = try #require(usage["last_used_at"] as? String)
            let lastUsed = try #require(EventCoding.parseTimestamp(last))
            #expect(lastUsed >= before.addingTimeInterval(-1) && lastUsed <= Date().addingTimeInterval(1))

            // An unused key shows zeros; the list shows the same counters as the item.
            let list = try json(try await client.call(.get, "/api/api-keys", key: Self.root))
            let keys = try #require(list["api_keys"] as? [[String: Any]])
            let dave = try #require(keys.first { $0["name"] as? String == "dave" }?["usage"] as? [String: Any])
            #expect(dave["requests"] as? Int == 0 && dave["refused"] as? Int == 0 && dave["last_used_at"] is NSNull)
            let listed = try #require(keys.first { $0["name"] as? String == "carol" }?["usage"] as? [String: Any])
            #expect(listed["requests"] as? Int == 4)
        }
    }
}
