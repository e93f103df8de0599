import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird

extension EventMetadata {
    /// Who made `request`. The actor is `anonymous` until API keys arrive (they name the actor).
    init(_ request: Request) {
        let headers = request.headers
        let forwarded = headers[HTTPField.Name("X-Forwarded-For")!]?.split(separator: ",").first
            .map { $0.trimmingCharacters(in: .whitespaces) }
        self.init(
            actor: "anonymous",
            requestId: headers[HTTPField.Name("X-Request-ID")!] ?? UUID().uuidString,
            clientAddress: forwarded,
            userAgent: headers[.userAgent]
        )
    }
}
