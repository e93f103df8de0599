import EventStore
import Foundation
import Testing
import VigilTesting

@testable import API

/// What a server lets go of when the log goes quiet (`IdleMemory`).
@Suite struct IdleMemoryTests {
    @Test("a quiet log releases the broadcaster's recent events; readers behind still get every event")
    func quietReleasesRecentEvents() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            let broadcaster = LogBroadcaster(
                store: store, notifier: notifier, logger: testLogger, ringCapacity: 1000, bufferCapacity: 64)
            let idle = IdleMemory(appends: notifier.signal, broadcaster: broadcaster, quiet: .milliseconds(300))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await broadcaster.run() }
                try await waitUntil("the broadcaster reads") { broadcaster.serves(after: try await store.head()) }
                for index in 0..<20 {
                    try await store.append(to: "s-\(index % 3)", events: [detection(sequence: index)])
                }
                try await waitUntil("the ring holds the events") { broadcaster.recentEventCount == 20 }
                // The log is quiet from here on.
                let releasing = Task { try await idle.run() }
                try await waitUntil("the quiet log releases them") { broadcaster.recentEventCount == 0 }
                try await waitUntil("and gives the free pages back") { idle.releases >= 1 }
                // While the log stays quiet, it goes on giving back what is freed meanwhile.
                let releases = idle.releases
                try await waitUntil("it releases again while quiet") { idle.releases > releases }
                releasing.cancel()
                try await releasing.value
                // The ring fills again from the next event.
                try await store.append(to: "s-0", events: [detection(sequence: 20)])
                try await waitUntil("the ring fills again") { broadcaster.recentEventCount == 1 }
                // A follower from the start reads what the ring let go of from the table.
                let source = SharedTailPages(
                    broadcaster: broadcaster, table: TablePages(store: store, notifier: notifier))
                var seen: [RecordedEvent] = []
                for try await page in source.pages(
                    from: .start, filter: .all, batchSize: 7, heartbeat: Heartbeat(.milliseconds(100)))
                {
                    seen += page.events
                    if seen.count >= 21 { break }
                }
                #expect(seen.map(\.id) == (try await store.readAll()).map(\.id))
                group.cancelAll()
            }
        }
    }
}
