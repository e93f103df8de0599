import Domain
import HTTPTypes
import Hummingbird

/// A shared key presented in `X-API-Key` until scoped API keys arrive: `VIGIL_WORKER_KEY`
/// (detections and analyses, actor `worker`) and `VIGIL_ADMIN_KEY` (settings, actor `admin`).
struct SharedKey {
    let key: String?
    let actor: String

    init(_ key: String?, actor: String) {
        self.key = key
        self.actor = actor
    }

    /// The request's metadata, its actor `actor` when a key is configured and matches;
    /// 401 when one is configured and missing or wrong.
    func authorize(_ request: Request) throws -> EventMetadata {
        var metadata = EventMetadata(request)
        guard let key else { return metadata }
        guard request.headers[HTTPField.Name("X-API-Key")!] == key else {
            throw APIError.unauthorized("Invalid or missing API key")
        }
        metadata.actor = actor
        return metadata
    }
}
