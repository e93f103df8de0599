import Domain
import EventStore
import Foundation
import NIOCore
import Projections
import Testing
import VigilTesting

@testable import API

/// Where the `/ws/events` feed starts. It is live only (no `after`), so it starts at the log's
/// head; that head is fixed before the server accepts sockets, not when the feed's task happens
/// to run. A feed that ran late (a loaded machine, a pool still connecting) once took the head
/// after a socket had subscribed and events had been appended, and that socket never got them.
@Suite struct EventsFeedStartTests {
    @Test("a feed that runs late still sends what was appended after its start was fixed")
    func lateFeedMissesNothing() async throws {
        try await TestDatabase.withStoreAndNotifier { store, notifier in
            let broadcaster = LogBroadcaster(
                store: store, notifier: notifier, logger: testLogger, ringCapacity: 64, bufferCapacity: 64)
            let feed = EventsFeed(
                follower: LogFollower(store: store, broadcaster: broadcaster),
                settings: SystemSettingsReader(store: store, defaults: .defaults), logger: testLogger, capacity: 64)
            try await EventsSocketTests.append(store, [EventsSocketTests.detection(1, at: 0)])
            // What the server does before it accepts sockets.
            let start = try await feed.startingPoint()
            let subscriber = try #require(feed.subscribe([.detections]))
            // A socket subscribed, then a detection came, and only then does the feed run.
            try await EventsSocketTests.append(store, [EventsSocketTests.detection(2, at: 60)])
            #expect(try await feed.startingPoint() == start, "the start is fixed once")
            let received = LogSocketTests.Received()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await broadcaster.run() }
                group.addTask { try await feed.run() }
                group.addTask {
                    for await message in subscriber.stream {
                        received.append(String(buffer: message))
                    }
                }
                try await waitUntil("the detection appended after the start arrives", timeout: .seconds(30)) {
                    received.count > 0
                }
                group.cancelAll()
            }
            let messages = received.all
            #expect(messages.count == received.count, "every message is a JSON object")
            // Only detection 2: detection 1 was in the log before the start.
            #expect(messages.map { $0["type"] as? String } == ["detection.new"])
            #expect((messages.first?["data"] as? [String: Any])?["id"] as? Int == 2)
        }
    }
}
