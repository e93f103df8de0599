import EventStore

/// The projection runners' pages from the process's one tail of the log (``LogBroadcaster``):
/// a commit is read from the table once per process, not once per runner. Each runner keeps
/// its own checkpoint and filter; a runner the broadcaster's recent events don't reach (it fell
/// that far behind, or the tail is not reading) reads the table as before (``TablePages``) until
/// they do.
///
/// A page served here is what a table read at the tail's position would answer: the tail read
/// every event up to that position, unfiltered, and keeps every one after the ring's start.
struct SharedTailPages: LogPageSource {
    let broadcaster: LogBroadcaster
    let table: TablePages
    /// How long a follower waits for the tail before it looks again (the notifier's idle poll).
    var idlePoll: Duration = .seconds(5)

    func pages(
        from checkpoint: Checkpoint, filter: LogFilter, batchSize: Int, heartbeat: Heartbeat?
    )
        -> any AsyncSequence<LogPage, any Error>
    {
        Pages(source: self, start: checkpoint, filter: filter, batchSize: batchSize, heartbeat: heartbeat)
    }

    struct Pages: AsyncSequence {
        typealias Element = LogPage

        let source: SharedTailPages
        let start: Checkpoint
        let filter: LogFilter
        let batchSize: Int
        let heartbeat: Heartbeat?

        func makeAsyncIterator() -> Iterator { Iterator(pages: self, checkpoint: start) }

        struct Iterator: AsyncIteratorProtocol {
            let pages: Pages
            var checkpoint: Checkpoint
            /// Set while catching up from the table.
            var table: (any AsyncIteratorProtocol<LogPage, any Error>)?

            init(pages: Pages, checkpoint: Checkpoint) {
                self.pages = pages
                self.checkpoint = checkpoint
            }

            mutating func next() async throws -> LogPage? {
                let broadcaster = pages.source.broadcaster
                while !Task.isCancelled {
                    if table == nil {
                        let seen = broadcaster.progress.generation
                        guard
                            let page = broadcaster.page(after: checkpoint, filter: pages.filter, limit: pages.batchSize)
                        else {
                            table = pages.source.table.pages(
                                from: checkpoint, filter: pages.filter, batchSize: pages.batchSize,
                                heartbeat: pages.heartbeat
                            ).makeAsyncIterator()
                            continue
                        }
                        if !page.events.isEmpty || page.next > checkpoint {
                            checkpoint = page.next
                            return page
                        }
                        // Caught up with the tail: wait for it to read on (or for the heartbeat).
                        let quiet = Swift.min(pages.heartbeat?.interval ?? pages.source.idlePoll, pages.source.idlePoll)
                        await broadcaster.progress.wait(after: seen, timeout: quiet)
                        if pages.heartbeat != nil, broadcaster.progress.generation == seen, !Task.isCancelled {
                            return page
                        }
                        continue
                    }
                    guard let page = try await table?.next(isolation: nil) else { return nil }
                    checkpoint = page.next
                    // Caught up from the table where the tail's recent events take over.
                    if !page.isFull, broadcaster.serves(after: checkpoint) { table = nil }
                    return page
                }
                return nil
            }
        }
    }
}
