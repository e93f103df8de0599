import Domain
import EventStore
import Projections
import Synchronization

/// Which cameras a detection may name: registered and not removed.
///
/// A camera's own stream says it (what commands are decided against); the cameras read
/// model answers for names beyond the first `streamLookups` of one request. Answers from the
/// streams are cached, so a detection of a known camera costs no query: the log broadcaster's
/// tail (``LogObserver``) empties the cache at every event of a camera stream, from any
/// instance, and whenever the tail stops reading (the cache is only used while it reads). An
/// answer read while a camera event went by is not kept. Unknown names are not cached: a camera
/// registered a moment ago is found in its stream before the tail has seen it.
final class KnownCameras: LogObserver {
    private struct Cache {
        var registered: Set<String> = []
        /// Bumped whenever the cache is emptied: an answer read across a bump is not kept.
        var generation: UInt64 = 0
        /// The tail is reading: the cache can be trusted.
        var isLive = false
    }

    static let streamLookups = 100
    static let capacity = 10_000

    let cameras: CamerasReadModel
    let store: EventStore
    private let cache = Mutex(Cache())

    init(cameras: CamerasReadModel, store: EventStore) {
        self.cameras = cameras
        self.store = store
    }

    /// Which of `ids` are registered and not removed.
    func known(_ ids: Set<String>) async throws -> Set<String> {
        let (cached, generation) = cache.withLock { cache in
            cache.isLive ? (ids.intersection(cache.registered), cache.generation) : ([], nil)
        }
        let misses = ids.subtracting(cached)
        guard !misses.isEmpty else { return cached }
        let fromStreams = Set(misses.sorted().prefix(Self.streamLookups))
        var found: Set<String> = []
        for id in fromStreams where try await store.camera(id).0 != nil { found.insert(id) }
        if let generation, !found.isEmpty {
            cache.withLock { cache in
                guard cache.isLive, cache.generation == generation, cache.registered.count < Self.capacity else {
                    return
                }
                cache.registered.formUnion(found)
            }
        }
        let rest = misses.subtracting(fromStreams)
        let fromReadModel = rest.isEmpty ? [] : try await cameras.registered(rest)
        return cached.union(found).union(fromReadModel)
    }

    /// A 422 issue for each input whose camera is unknown (`location` names its field).
    func issues(_ inputs: [(input: DetectionInput, location: [String])]) async throws -> [ValidationError.Issue] {
        guard !inputs.isEmpty else { return [] }
        let known = try await known(Set(inputs.map(\.input.cameraId)))
        return inputs.filter { !known.contains($0.input.cameraId) }.map {
            Self.unknown($0.input.cameraId, at: $0.location)
        }
    }

    static func unknown(_ id: String, at location: [String]) -> ValidationError.Issue {
        .init(location: location, message: "Value error, camera '\(id)' does not exist", type: "value_error")
    }

    // MARK: LogObserver

    func observe(_ events: [RecordedEvent]) {
        let cameraEvent = events.contains { $0.stream.hasPrefix(Camera.streamPrefix) }
        cache.withLock { cache in
            if cameraEvent { Self.empty(&cache) }
            cache.isLive = true
        }
    }

    func tailInterrupted() {
        cache.withLock { cache in
            Self.empty(&cache)
            cache.isLive = false
        }
    }

    private static func empty(_ cache: inout Cache) {
        cache.registered.removeAll()
        cache.generation &+= 1
    }
}
