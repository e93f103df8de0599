import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird

extension EventMetadata {
    /// Who made `request`. The actor is `anonymous` until API keys arrive (they name the actor).
    /// The client address is the one ``ClientAddressMiddleware`` resolved: the socket's peer, or
    /// what a trusted proxy forwarded; none without a socket (router tests).
    init(_ request: Request) {
        let headers = request.headers
        self.init(
            actor: "anonymous",
            requestId: headers[HTTPField.Name("X-Request-ID")!] ?? UUID().uuidString,
            clientAddress: RequestOrigin.clientAddress,
            userAgent: headers[.userAgent]
        )
    }
}
