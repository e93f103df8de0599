import Foundation
import Logging
import Projections
import ServiceLifecycle
import Synchronization

/// The usage counters of API keys: how many requests each key came with (recognised, allowed or
/// not), how many of them were refused for its role (403), and when and from which address it
/// was last used; `GET /api/api-keys` shows them.
///
/// Counted in memory and added to the database (`api_key_usage`) every few seconds and once
/// more at shutdown, so a request costs no write: a crash loses at most one interval of counts.
/// Every instance adds its own, so the counters are the sum over all instances. They are
/// operational records, not events: a read is not a change, and the log would grow with every
/// request.
final class KeyUsage: Service, Sendable {
    private let keys: ApiKeysReadModel
    private let interval: Duration
    private let logger: Logger
    private let pending = Mutex<[String: KeyUsageTally]>([:])

    init(keys: ApiKeysReadModel, interval: Duration, logger: Logger) {
        self.keys = keys
        self.interval = interval
        self.logger = logger
    }

    /// Counts one request that came with the key `name`.
    func record(_ name: String, refused: Bool) {
        let now = Date()
        let address = RequestOrigin.clientAddress
        let tally = KeyUsageTally(requests: 1, refused: refused ? 1 : 0, lastUsedAt: now, lastAddress: address)
        pending.withLock { Self.merge([name: tally], into: &$0) }
    }

    /// Adds what was counted since the last flush to the database; on failure it is kept for the
    /// next one (nothing counted is dropped while the database is away).
    func flush() async {
        let tallies = pending.withLock { pending in
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
        guard !tallies.isEmpty else { return }
        do {
            try await keys.addUsage(tallies)
        } catch {
            pending.withLock { Self.merge(tallies, into: &$0) }
            // Stopping cancels a flush under way: the last one, after it, saves these. (It was a
            // warning in /api/logs at every shutdown.)
            if !Task.isCancelled {
                logger.warning("API key usage not saved, kept for the next try", metadata: ["error": "\(error)"])
            }
        }
    }

    private static func merge(_ tallies: [String: KeyUsageTally], into pending: inout [String: KeyUsageTally]) {
        for (name, tally) in tallies {
            if pending[name] == nil { pending[name] = tally } else { pending[name]?.add(tally) }
        }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.interval)
                await self.flush()
            }
        }
        await flush()
    }
}
