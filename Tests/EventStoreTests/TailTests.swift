import EventStore
import Foundation
import Testing
import VigilTesting

/// A lost event would leave a tail waiting forever: the time limit turns that into a failure.
@Suite("Tailing the log", .timeLimit(.minutes(1)))
struct TailTests {
    @Test("a tailer resumed from a saved checkpoint continues without loss or duplicates")
    func resumeFromCheckpoint() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            let first = (0..<300).map { detection(sequence: $0) }
            try await store.append(to: "camera-a", events: Array(first[0..<150]))
            try await store.append(to: "camera-b", events: Array(first[150...]))

            // Consume 120 events, remember the checkpoint of the last one, stop.
            var saved = Checkpoint.start
            var delivered: [UUID] = []
            for try await event in store.tail(from: .start, notifier: notifier, batchSize: 50) {
                delivered.append(event.id)
                saved = event.checkpoint
                if delivered.count == 120 { break }
            }

            // More events arrive while no one is reading, and while the new tailer follows live.
            let second = (0..<200).map { detection(sequence: $0) }
            try await store.append(to: "camera-a", events: Array(second[0..<100]))
            async let live: Void = {
                try await Task.sleep(for: .milliseconds(200))
                for chunk in stride(from: 100, to: 200, by: 10) {
                    try await store.append(to: "camera-c", events: Array(second[chunk..<chunk + 10]))
                }
            }()

            for try await event in store.tail(from: saved, notifier: notifier, batchSize: 64) {
                delivered.append(event.id)
                if delivered.count == 500 { break }
            }
            try await live
            #expect(delivered == (first + second).map(\.id))
            #expect(Set(delivered).count == 500)
        }
    }

    @Test("a filtered tail only delivers matching events and follows live appends")
    func filteredTail() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            try await store.append(to: "camera-a", events: [detection()])
            let opened = NewEvent(type: "SecurityEventOpened", data: #"{"id":1}"#)
            async let writer: Void = {
                try await Task.sleep(for: .milliseconds(100))
                try await store.append(to: "camera-a", events: (0..<20).map { detection(sequence: $0) })
                try await store.append(to: "secevent-1", events: [opened])
            }()
            var seen: [RecordedEvent] = []
            let filter = LogFilter(types: ["SecurityEventOpened"])
            for try await event in store.tail(from: .start, filter: filter, notifier: notifier) {
                seen.append(event)
                break
            }
            try await writer
            #expect(seen.map(\.id) == [opened.id])
        }
    }
}
