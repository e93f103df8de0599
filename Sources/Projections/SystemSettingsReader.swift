import Domain
import EventStore
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// The configuration and severity thresholds in force: the server's defaults with the
/// `config-system` stream folded over them.
///
/// It reads the stream itself, not a read model, so a change is in force for every reader on
/// every instance the moment its append commits (a read model could lag behind a busy log).
/// The stream is small and the fold is cached by the stream's version: a read costs one
/// primary-key lookup unless something changed.
public final class SystemSettingsReader: Sendable {
    public let store: EventStore
    public let defaults: SystemSettings
    private let cache = Mutex<(version: Int64, settings: SystemSettings)?>(nil)

    public init(store: EventStore, defaults: SystemSettings) {
        self.store = store
        self.defaults = defaults
    }

    /// The settings in force now.
    public func current() async throws -> SystemSettings { try await load().settings }

    /// The settings in force and the version of `config-system` they come from (0: no change yet).
    public func load() async throws -> (settings: SystemSettings, version: Int64) {
        let version = try await store.version(of: SystemSettings.stream)
        if let cached = cache.withLock({ $0 }), cached.version == version { return (cached.settings, version) }

        let stream = version > 0 ? try await store.readWholeStream(SystemSettings.stream)?.events ?? [] : []
        let events = stream.filter { $0.version <= version }.map { (type: $0.type, data: $0.data) }
        let settings = try defaults.folding(events)
        cache.withLock { cached in
            if (cached?.version ?? -1) < version { cached = (version, settings) }
        }
        return (settings, version)
    }
}
