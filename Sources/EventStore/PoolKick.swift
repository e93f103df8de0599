import PostgresNIO
import ServiceLifecycle

/// Serves the requests for a pooled connection that PostgresNIO 1.33's pool leaves waiting.
///
/// A request that comes while 20 connections are already being opened (the pool's
/// `maximumConcurrentConnectionRequests`) is queued without a connection being opened for it.
/// Once those are open, the pool counts its leased connections as soon free
/// (`PoolStateMachine.handleAvailableConnection`) and opens none for the queued requests, however
/// far below its limit: they wait for a connection to come back. Where the leases are held for
/// long (a runner holds one for as long as it runs), that can be never. Seen in the tests: 25
/// of 40 connections leased, twelve runners starting at once, and an append that got no
/// connection within 2 s. (Upstream's vapor/postgres-nio#657 is a sibling: a request stranded
/// after the last connection closes.)
///
/// A new request still opens a connection when none is idle, and that connection goes to the
/// oldest waiting request. So this asks for a connection and withdraws the request unless it is
/// served at once: each such kick serves one waiting request. Served at once, by an idle
/// connection, it says nothing waits (the pool hands an idle connection to a waiting request
/// first): the next kick comes after `quietInterval`, else after `interval`. Its cost: an idle
/// server after the demo backfill holds 1.1–2.5 MB more with it than without, with the same
/// open connections (two measurements; docs/BENCHMARKS.md, Memory).
public struct PoolKick: Service {
    let client: PostgresClient
    let interval: Duration
    let quietInterval: Duration

    public init(
        client: PostgresClient, interval: Duration = .milliseconds(50), quietInterval: Duration = .milliseconds(500)
    ) {
        self.client = client
        self.interval = interval
        self.quietInterval = quietInterval
    }

    /// Until cancelled or shut down, and then it returns without an error (a service that
    /// throws would fail the server's stop).
    public func run() async {
        try? await cancelWhenGracefulShutdown {
            var wait = interval
            while true {
                try await Task.sleep(for: wait)
                wait = await kick() ? quietInterval : interval
            }
        }
    }

    /// One request, withdrawn after 2 ms unless it was served; whether it was.
    func kick() async -> Bool {
        let client = self.client
        let request = Task { (try? await client.withConnection { _ in true }) ?? false }
        try? await Task.sleep(for: .milliseconds(2))
        request.cancel()
        return await request.value
    }
}
