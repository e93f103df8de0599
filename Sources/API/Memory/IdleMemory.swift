import CMalloc
import EventStore
import ServiceLifecycle
import Synchronization

/// What a server lets go of once the log has been quiet for a while (`quiet`, no event
/// appended by any instance): the `/ws/log` broadcaster's recent events, then the allocator's
/// free pages.
///
/// glibc's `malloc` keeps the pages of what is freed inside its heaps, so after a burst (the
/// demo's backfill, a flood of detections) a server's resident memory stays at the burst's peak
/// although most of it is free; `malloc_trim(0)` gives every whole free page back. It runs at
/// every check of a quiet spell (what is freed later, as the pool's idle timers run out, goes
/// back too), never under load, where it would hold the allocator's locks while requests
/// allocate. `tools/bench/memory` measures it (docs/BENCHMARKS.md, Memory).
final class IdleMemory: Service, Sendable {
    private let appends: ChangeSignal
    private let broadcaster: LogBroadcaster
    let quiet: Duration
    private let releaseCount = Atomic<Int>(0)

    init(appends: ChangeSignal, broadcaster: LogBroadcaster, quiet: Duration = .seconds(5)) {
        self.appends = appends
        self.broadcaster = broadcaster
        self.quiet = quiet
    }

    /// Releases since the start (for tests).
    var releases: Int { releaseCount.load(ordering: .relaxed) }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var seen = self.appends.generation
            while !Task.isCancelled {
                try? await Task.sleep(for: self.quiet)
                let now = self.appends.generation
                if now == seen { self.release() }
                seen = now
            }
        }
    }

    private func release() {
        broadcaster.releaseRecentEvents()
        malloc_trim(0)
        releaseCount.add(1, ordering: .relaxed)
    }
}
