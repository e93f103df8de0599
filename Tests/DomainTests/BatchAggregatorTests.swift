import Domain
import Foundation
import Testing

/// The batch aggregator's boundaries, with time passed in (the test controls the clock).
@Suite struct BatchAggregatorTests {
    static let t0 = Date(timeIntervalSince1970: 1_795_000_000)
    static let policy = BatchPolicy.defaults  // window 90 s, idle 30 s, threshold 0.5, fast path person ≥ 0.9

    var nextID: Int64 = 0

    mutating func detection(
        _ seconds: Double, camera: String = "front_door", object: String = "car", confidence: Double = 0.8
    ) -> DetectionRecorded {
        nextID += 1
        return DetectionRecorded(
            id: nextID, cameraId: camera, filePath: "/x/\(nextID).jpg",
            detectedAt: Self.t0.addingTimeInterval(seconds), objectType: object, confidence: confidence,
            bboxX: 0, bboxY: 0, bboxWidth: 10, bboxHeight: 10)
    }

    /// Feeds detections recorded as they happen (log time = detection time).
    static func feed(_ detections: [DetectionRecorded], into aggregator: inout BatchAggregator) -> [BatchOutput] {
        detections.flatMap { aggregator.receive($0, recordedAt: $0.detectedAt) }
    }

    static func closed(_ outputs: [BatchOutput]) -> [[Int64]] {
        outputs.compactMap { if case .closed(let event) = $0 { event.detectionIds } else { nil } }
    }

    @Test mutating func idleTimeoutClosesAtExactlyThirtySeconds() {
        var aggregator = BatchAggregator(policy: Self.policy)
        // Gaps of 29.999 s keep the batch open; a gap of exactly 30 s starts a new one.
        let detections = [detection(0), detection(29.999), detection(59.998), detection(89.998 - 0.001)]
        var outputs = Self.feed(detections, into: &aggregator)
        #expect(Self.closed(outputs).isEmpty)
        #expect(aggregator.open["front_door"]?.detectionIds == [1, 2, 3, 4])

        var other = BatchAggregator(policy: Self.policy)
        outputs = Self.feed([detection(0), detection(30)], into: &other)
        #expect(Self.closed(outputs) == [[5]])
        #expect(other.open["front_door"]?.detectionIds == [6])
    }

    @Test mutating func windowClosesAtNinetySecondsEvenWhenBusy() {
        var aggregator = BatchAggregator(policy: Self.policy)
        // A detection every 20 s: never idle, so the window (90 s after the first) closes it.
        let detections = (0...5).map { detection(Double($0) * 20) }  // 0, 20, 40, 60, 80, 100
        let outputs = Self.feed(detections, into: &aggregator)
        #expect(Self.closed(outputs) == [[1, 2, 3, 4, 5]])
        #expect(aggregator.open["front_door"]?.detectionIds == [6])

        var exact = BatchAggregator(policy: Self.policy)
        let atWindow = [detection(0), detection(25), detection(50), detection(75), detection(89.999), detection(90)]
        #expect(Self.closed(Self.feed(atWindow, into: &exact)) == [[7, 8, 9, 10, 11]])
    }

    @Test mutating func theClockClosesQuietBatches() {
        var aggregator = BatchAggregator(policy: Self.policy)
        _ = Self.feed([detection(0, camera: "a"), detection(10, camera: "b")], into: &aggregator)
        #expect(aggregator.advance(to: Self.t0.addingTimeInterval(29.999)).isEmpty)
        let first = aggregator.advance(to: Self.t0.addingTimeInterval(30))
        #expect(Self.closed(first) == [[1]])
        #expect(aggregator.open.keys.sorted() == ["b"])
        let second = aggregator.advance(to: Self.t0.addingTimeInterval(40))
        #expect(Self.closed(second) == [[2]])
        #expect(aggregator.open.isEmpty)
    }

    @Test mutating func camerasBatchSeparately() {
        var aggregator = BatchAggregator(policy: Self.policy)
        let outputs = Self.feed(
            [detection(0, camera: "a"), detection(1, camera: "b"), detection(2, camera: "a", object: "person")],
            into: &aggregator)
        let opened = outputs.compactMap { if case .opened(let event) = $0 { event.cameraId } else { nil } }
        #expect(opened == ["a", "b"])
        #expect(aggregator.open["a"]?.detectionIds == [1, 3])
        #expect(aggregator.open["a"]?.objectTypes == ["car", "person"])
    }

    @Test mutating func fastPathIsItsOwnEventAndLeavesTheBatchAlone() {
        var aggregator = BatchAggregator(policy: Self.policy)
        var outputs = Self.feed([detection(0)], into: &aggregator)
        outputs = Self.feed([detection(5, object: "person", confidence: 0.9)], into: &aggregator)
        guard outputs.count == 2, case .opened(let opened) = outputs[0], case .closed(let closed) = outputs[1] else {
            Issue.record("expected opened+closed, got \(outputs)")
            return
        }
        #expect(opened.isFastPath)
        #expect(opened.detectionIds == [2])
        #expect(closed.detectionIds == [2])
        #expect(aggregator.open["front_door"]?.detectionIds == [1])
        // Just under the fast-path confidence, or not a fast-path type: batched as usual.
        outputs = Self.feed(
            [detection(6, object: "person", confidence: 0.899), detection(7, object: "car", confidence: 0.99)],
            into: &aggregator)
        #expect(outputs.isEmpty)
        #expect(aggregator.open["front_door"]?.detectionIds == [1, 3, 4])
    }

    @Test mutating func belowTheConfidenceThresholdIsNotBatched() {
        var aggregator = BatchAggregator(policy: Self.policy)
        #expect(Self.feed([detection(0, confidence: 0.499)], into: &aggregator).isEmpty)
        #expect(aggregator.open.isEmpty)
        #expect(!Self.feed([detection(1, confidence: 0.5)], into: &aggregator).isEmpty)
    }

    /// A backfill: last week's detections ingested now (all recorded within a second) batch by
    /// detection time; the last batch closes when the log's clock passes its idle timeout.
    @Test mutating func backfillBatchesByDetectionTime() {
        var aggregator = BatchAggregator(policy: Self.policy)
        let now = Self.t0.addingTimeInterval(7 * 86_400)
        let detections = [detection(0), detection(10), detection(3600), detection(3605)]
        let outputs = detections.flatMap { aggregator.receive($0, recordedAt: now) }
        #expect(Self.closed(outputs) == [[1, 2]])
        #expect(aggregator.advance(to: now.addingTimeInterval(29)).isEmpty)
        #expect(Self.closed(aggregator.advance(to: now.addingTimeInterval(30))) == [[3, 4]])
    }

    /// The same detections give the same events however they are split into pages, as long as
    /// each page ends with `advance(to:)` its newest log time (what the reactor does). Only the
    /// moment a quiet camera's close is noticed moves (its content and id don't).
    @Test mutating func decisionsDoNotDependOnPageBoundaries() {
        // Log time moves forward; detection times jitter (some cameras report late).
        var detections: [(detection: DetectionRecorded, recordedAt: Date)] = []
        for index in 0..<200 {
            let camera = ["a", "b", "c"][index % 3]
            let seconds = Double(index) * 7
            let jitter = index % 5 == 0 ? -40.0 : 0
            let detection = detection(seconds + jitter, camera: camera, object: index % 11 == 0 ? "person" : "car")
            detections.append((detection, Self.t0.addingTimeInterval(seconds)))
        }
        func run(pageSize: Int) -> [BatchOutput] {
            var aggregator = BatchAggregator(policy: Self.policy)
            var outputs: [BatchOutput] = []
            var ids: [Int64] = []
            for start in stride(from: 0, to: detections.count, by: pageSize) {
                let page = detections[start..<min(start + pageSize, detections.count)]
                var pageOutputs = page.flatMap { aggregator.receive($0.detection, recordedAt: $0.recordedAt) }
                pageOutputs += aggregator.advance(to: page.last!.recordedAt)
                let fresh = (0..<aggregator.provisionalCount).map { Int64(ids.count + 1 + $0) }
                ids += fresh
                outputs += pageOutputs.map { BatchAggregator.resolve($0, with: fresh) }
                aggregator.assignIDs(fresh)
            }
            return outputs
        }
        let reference = run(pageSize: 1)
        #expect(reference.count > 20)
        // Multisets, not sets: a batch closed twice (or an event opened twice) must show.
        func counted(_ outputs: [BatchOutput]) -> [BatchOutput: Int] {
            outputs.reduce(into: [:]) { $0[$1, default: 0] += 1 }
        }
        #expect(counted(reference).values.allSatisfy { $0 == 1 })
        for pageSize in [2, 7, 64, 200] { #expect(counted(run(pageSize: pageSize)) == counted(reference)) }
    }

    @Test func deterministicIDsAreStableAndDistinct() {
        let a = DeterministicID.uuid("SecurityEventOpened", "front_door-1")
        #expect(a == DeterministicID.uuid("SecurityEventOpened", "front_door-1"))
        #expect(a != DeterministicID.uuid("SecurityEventOpened", "front_door-2"))
        #expect(a != DeterministicID.uuid("SecurityEventClosed", "front_door-1"))
        #expect(a.uuidString.dropFirst(14).first == "8")  // version 8
    }

    @Test func randomIDsAreVersion4AndDistinct() {
        let ids = (0..<10_000).map { _ in UUID.random() }
        #expect(Set(ids).count == ids.count)
        for id in ids.prefix(100) {
            #expect(id.uuidString.dropFirst(14).first == "4")  // version 4
            #expect("89AB".contains(id.uuidString.dropFirst(19).first!))  // RFC variant
        }
        // Every bit outside the version and variant varies.
        let bytes = ids.prefix(64).map { withUnsafeBytes(of: $0.uuid) { Array($0) } }
        let varying = (0..<16).map { index in Set(bytes.map { $0[index] }).count > 1 }
        #expect(varying.allSatisfy { $0 })
    }

    @Test func heuristicScoresPeopleAtNightHigher() {
        let noon = Self.t0.addingTimeInterval(
            -Self.t0.timeIntervalSince1970.truncatingRemainder(dividingBy: 86_400) + 12 * 3600)
        let night = noon.addingTimeInterval(14 * 3600)  // 02:00 UTC
        let cat = HeuristicAnalyzer.analyze(objectTypes: ["cat"], detectionCount: 1, startedAt: noon, isFastPath: false)
        let person = HeuristicAnalyzer.analyze(
            objectTypes: ["person"], detectionCount: 1, startedAt: noon, isFastPath: false)
        let nightPerson = HeuristicAnalyzer.analyze(
            objectTypes: ["person", "car"], detectionCount: 6, startedAt: night, isFastPath: true)
        #expect(cat.riskScore < person.riskScore)
        #expect(person.riskScore < nightPerson.riskScore)
        #expect((0...100).contains(nightPerson.riskScore))
        #expect(nightPerson.reasoning.contains("night"))
    }

    @Test func heuristicSummarySaysWhatWasSeenAndNamesNoLevel() {
        let noon = Self.t0.addingTimeInterval(
            -Self.t0.timeIntervalSince1970.truncatingRemainder(dividingBy: 86_400) + 12 * 3600)
        let result = HeuristicAnalyzer.analyze(
            objectTypes: ["person", "car"], detectionCount: 1, startedAt: noon, isFastPath: false)
        #expect(result.summary == "Seen: person, car")
        // The level is derived at read time; a level word stored in the summary would go stale.
        for level in RiskLevel.allCases { #expect(!result.summary.lowercased().contains(level.rawValue)) }
    }

    /// `changed` names every camera whose open batch a caller keeping the batches must write
    /// again: opened, extended, renumbered, closed by the clock or by the camera's removal. A
    /// detection below the threshold and a fast-path one leave the open batches as they were.
    @Test mutating func changedNamesTheCamerasWhoseBatchChanged() {
        var aggregator = BatchAggregator(policy: Self.policy)
        _ = Self.feed([detection(0, camera: "a"), detection(1, camera: "b")], into: &aggregator)
        #expect(aggregator.changed == ["a", "b"])
        aggregator.assignIDs([100, 101])
        #expect(aggregator.open["a"]?.id == 100 && aggregator.open["b"]?.id == 101)

        var kept = BatchAggregator(policy: Self.policy, open: aggregator.open)
        _ = Self.feed(
            [
                detection(2, camera: "a", confidence: 0.1),
                detection(3, camera: "c", object: "person", confidence: 0.95),
            ],
            into: &kept)
        #expect(kept.changed.isEmpty)
        #expect(kept.open == aggregator.open)
        _ = Self.feed([detection(4, camera: "a")], into: &kept)
        #expect(kept.changed == ["a"])

        var clock = BatchAggregator(policy: Self.policy, open: aggregator.open)
        #expect(Self.closed(clock.advance(to: Self.t0.addingTimeInterval(30.5))) == [[1]])
        #expect(clock.changed == ["a"])
        #expect(Self.closed(clock.close(camera: "b")) == [[2]])
        #expect(clock.changed == ["a", "b"])
        #expect(clock.close(camera: "b").isEmpty)
    }

    /// A batch's ids grow in place: under a flood a batch holds tens of thousands of ids, and a
    /// copy of them at every detection was a fifth of the server's CPU.
    @Test mutating func aBatchGrowsInPlace() {
        var aggregator = BatchAggregator(policy: Self.policy)
        _ = Self.feed((0..<100).map { detection(Double($0) * 0.1) }, into: &aggregator)
        func storage() -> (address: UInt, capacity: Int) {
            aggregator.open["front_door"]!.detectionIds.withUnsafeBufferPointer {
                (UInt(bitPattern: $0.baseAddress), $0.count)
            }
        }
        let capacity = aggregator.open["front_door"]!.detectionIds.capacity
        let before = storage()
        #expect(before.capacity == 100)
        #expect(capacity > 100, "no room to grow in place: \(capacity)")
        _ = Self.feed([detection(10.5)], into: &aggregator)
        let after = storage()
        #expect(after.capacity == 101)
        #expect(after.address == before.address, "the batch's ids were copied")
    }
}
