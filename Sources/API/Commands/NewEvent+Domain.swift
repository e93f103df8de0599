import Domain
import EventStore
import Foundation
import HTTPTypes
import Hummingbird

extension EventMetadata {
    /// Who made `request`: the actor is the name of its API key (``Principal``), `anonymous` when
    /// auth is off.
    /// The client address is the one ``ClientAddressMiddleware`` resolved: the socket's peer, or
    /// what a trusted proxy forwarded; none without a socket (router tests).
    init(_ request: Request) {
        let headers = request.headers
        self.init(
            actor: Principal.current?.name ?? "anonymous",
            requestId: headers[HTTPField.Name("X-Request-ID")!] ?? UUID.random().uuidString,
            clientAddress: RequestOrigin.clientAddress,
            userAgent: headers[.userAgent]
        )
    }
}
