import Domain
import EventStore
import Projections

/// Which cameras a detection may name: registered and not removed. The cameras read model
/// answers first; a camera it doesn't show (a registration it hasn't applied yet) is looked up
/// in its stream.
struct KnownCameras {
    let cameras: CamerasReadModel
    let store: EventStore

    /// Which of `ids` are registered and not removed.
    func known(_ ids: Set<String>) async throws -> Set<String> {
        var known = try await cameras.registered(ids)
        for id in ids.subtracting(known).prefix(100) {
            guard let page = try await store.readStream(Camera.stream(id)) else { continue }
            if try Camera.fold(page.events.map { ($0.type, $0.data) }) != nil { known.insert(id) }
        }
        return known
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
}
