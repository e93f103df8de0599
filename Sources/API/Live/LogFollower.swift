import EventStore
import NIOCore

/// Follows the log after a checkpoint through the process's ``LogBroadcaster``: from the table
/// until caught up, then from the broadcaster's live feed; back to the table whenever the
/// follower falls behind (its buffer at the broadcaster overflowed). Every event after the start
/// that the filter takes is handed over once, in log order. What `/ws/log` sockets and the
/// `/ws/events` feed both stand on.
struct LogFollower {
    let store: EventStore
    let broadcaster: LogBroadcaster

    enum Step {
        /// An event, with its `/ws/log` message (rendered on first use).
        case event(LogBroadcaster.Item)
        /// The log moved past events the filter skipped: resume from here to skip them too.
        case progress(Checkpoint)

        var checkpoint: Checkpoint {
            switch self {
            case .event(let item): item.checkpoint
            case .progress(let checkpoint): checkpoint
            }
        }
    }

    /// Hands every step to `deliver` until cancelled, `deliver` throws or the broadcaster stops.
    func follow(
        from start: Checkpoint, filter: LogFilter, _ deliver: (Step) async throws -> Void
    ) async throws {
        var checkpoint = start
        while !Task.isCancelled {
            // Catch up from the table: until a page is not full and the broadcaster's recent
            // events reach back to here.
            while true {
                let page = try await store.read(after: checkpoint, filter: filter, limit: 500)
                for event in page.events { try await deliver(.event(LogBroadcaster.Item(event: event))) }
                if page.events.isEmpty, page.next > checkpoint { try await deliver(.progress(page.next)) }
                checkpoint = page.next
                if !page.isFull {
                    if broadcaster.covers(checkpoint) { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            guard let subscription = broadcaster.subscribe(after: checkpoint, filter: filter) else { continue }
            defer { broadcaster.unsubscribe(subscription) }
            for await delivery in subscription.stream {
                switch delivery {
                case .event(let item): try await deliver(.event(item))
                case .progress(let next): try await deliver(.progress(next))
                }
                checkpoint = delivery.checkpoint
            }
            // The stream ended: this follower fell behind (catch up again), or the server stops.
            guard subscription.overflowed else { return }
        }
    }
}
