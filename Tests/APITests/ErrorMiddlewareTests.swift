import API
import EventStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// The last line of defence: an error a route did not map itself still answers in the seed's
/// format, with the status its cause deserves.
@Suite struct ErrorMiddlewareTests {
    @Test func aRefusedAppendNoRouteMappedIs409AndAMalformedOneA500() async throws {
        let router = Router(context: BasicRequestContext.self)
        router.middlewares.add(ErrorMiddleware())
        let errors: [String: AppendError] = [
            "version": .wrongExpectedVersion(stream: "s-1", expected: .exact(1), current: 2),
            "duplicate": .duplicateEventID(UUID(uuidString: "00000000-0000-0000-0000-000000000001")!),
            "contended": .tooMuchContention(stream: "s-1"),
            "invalid": .invalidRequest("stream name must not be empty"),
        ]
        for (name, error) in errors {
            router.get("/\(name)") { _, _ -> Response in throw error }
        }
        try await Application(router: router).test(.router) { client in
            for name in ["version", "duplicate", "contended"] {
                let response = try await client.execute(uri: "/\(name)", method: .get)
                #expect(response.status == .conflict, "\(name)")
                let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))
                let detail = (body as? [String: Any])?["detail"] as? String ?? ""
                #expect(detail.hasPrefix("Conflict: ") && detail.contains("\(errors[name]!)"), "\(detail)")
            }
            // A malformed append is the server's own bug: a 500 without internals.
            let invalid = try await client.execute(uri: "/invalid", method: .get)
            #expect(invalid.status == .internalServerError)
            #expect(!String(buffer: invalid.body).contains("stream name"))
        }
    }
}
