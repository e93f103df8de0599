import EventStore
import Foundation
import Projections
import Testing

@Suite("Event runs")
struct EventRunTests {
    static func events(_ types: [String]) -> [RecordedEvent] {
        types.enumerated().map { index, type in
            RecordedEvent(
                checkpoint: Checkpoint(transactionID: 1, position: Int64(index + 1)), id: UUID(), stream: "s",
                version: Int64(index + 1), type: type, schemaVersion: 1, data: #"{"n":\#(index + 1)}"#, metadata: "{}",
                recordedAt: Date())
        }
    }

    @Test("Between barriers events group by type; barriers stay where they stand")
    func split() {
        let runs = EventRun.split(
            Self.events(["A", "B", "C", "A", "B", "X", "X", "B", "A", "Z"]), barriers: ["X"])
        #expect(runs.map(\.type) == ["A", "B", "C", "X", "A", "B", "Z"])
        #expect(runs.map(\.positions) == [[1, 4], [2, 5], [3], [6, 7], [9], [8], [10]])
        #expect(runs[0].data == [#"{"n":1}"#, #"{"n":4}"#])
    }

    @Test("Without barriers, a page is one run per type")
    func noBarriers() {
        let runs = EventRun.split(Self.events(["B", "A", "B", "A"]))
        #expect(runs.map(\.type) == ["A", "B"])
        #expect(runs.map(\.positions) == [[2, 4], [1, 3]])
    }
}
