import EventStore
import Foundation
import Testing

@testable import Projections

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
        #expect(runs.map(\.count) == [2, 2, 1, 2, 1, 1, 1])
    }

    @Test("Without barriers, a page is one run per type")
    func noBarriers() {
        let runs = EventRun.split(Self.events(["B", "A", "B", "A"]))
        #expect(runs.map(\.type) == ["A", "B"])
        #expect(runs.map(\.positions) == [[2, 4], [1, 3]])
    }

    @Test("Reading the log, each run is the stretch of the log around its group or its barriers")
    func stretches() {
        let start = Checkpoint(transactionID: 1, position: 0)
        let runs = EventRun.flatten(
            EventRun.segments(
                Self.events(["A", "B", "C", "A", "B", "X", "X", "B", "A", "Z"]), barriers: ["X"],
                readingLogAfter: start))
        #expect(runs.map(\.type) == ["A", "B", "C", "X", "A", "B", "Z"])
        #expect(runs.map(\.count) == [2, 2, 1, 2, 1, 1, 1])
        #expect(runs.map(\.stretch) == [[0, 5], [0, 5], [0, 5], [5, 7], [7, 10], [7, 10], [7, 10]])
        // Barriers first: the stretch starts where the page does, and groups follow on.
        let leading = EventRun.flatten(
            EventRun.segments(Self.events(["X", "A", "X"]), barriers: ["X"], readingLogAfter: start))
        #expect(leading.map(\.stretch) == [[0, 1], [1, 2], [2, 3]])
        #expect(leading.map(\.positions) == [[], [], []])
        #expect(runs.map(\.positionRange) == [1...4, 2...5, 3...3, 6...7, 9...9, 8...8, 10...10])
    }
}

extension EventRun {
    /// The positions of the events a run carries (none when it reads the log).
    fileprivate var positions: [Int64] {
        if case .values(_, let positions, _) = source { return positions }
        return []
    }

    fileprivate var data: [String] {
        if case .values(let data, _, _) = source { return data }
        return []
    }

    /// The positions of the run's own events, from the first to the last.
    fileprivate var positionRange: ClosedRange<Int64>? {
        if case .log(_, _, let positions) = source { return positions }
        return nil
    }

    /// The positions around the stretch of the log a run reads (none when it carries its events).
    fileprivate var stretch: [Int64] {
        if case .log(let start, let end, _) = source { return [start.position, end.position] }
        return []
    }
}
