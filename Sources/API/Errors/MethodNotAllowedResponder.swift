import HTTPTypes
import Hummingbird

/// A known path asked with a method it doesn't serve answers `405` with an `Allow` header
/// naming the methods it does (`HEAD` with `GET`), not `404`.
///
/// Hummingbird's router answers both cases with its not-found responder. Its route table is
/// listed (`router.routes`), but matching a path against it (parameters, wildcards, case) is
/// the router's own work, so when the router found no route this asks it again with each other
/// method, as a *probe*: ``MethodProbeMiddleware``, the router's first middleware, answers a probe
/// `204` as soon as the router has matched a route, before any other middleware or handler
/// runs (nothing is read, written or logged), and `404` when it hasn't.
struct MethodNotAllowedResponder<Base: HTTPResponder>: HTTPResponder where Base.Context == VigilRequestContext {
    typealias Context = VigilRequestContext
    let base: Base

    static var methods: [HTTPRequest.Method] { [.get, .post, .put, .patch, .delete] }

    func respond(to request: Request, context: Context) async throws -> Response {
        let response: Response
        do {
            response = try await base.respond(to: request, context: context)
        } catch let error as any HTTPResponseError where error.status == .notFound {
            response = try error.response(from: request, context: context)
        }
        guard response.status == .notFound, context.coreContext.endpointPath.value == "NotFound" else {
            return response
        }
        var allowed: [HTTPRequest.Method] = []
        for method in Self.methods where method != request.method {
            var probe = context
            probe.isMethodProbe = true
            context.coreContext.endpointPath.value = nil
            var head = request.head
            head.method = method
            let answer = try? await base.respond(to: Request(head: head, body: .init(buffer: .init())), context: probe)
            if answer?.status == .noContent { allowed.append(method) }
        }
        context.coreContext.endpointPath.value = "NotFound"
        guard !allowed.isEmpty else { return response }
        if allowed.contains(.get) { allowed.insert(.head, at: 1) }
        return try APIError(.methodNotAllowed, "Method Not Allowed")
            .response(from: request, context: context)
            .with(header: .allow, allowed.map(\.rawValue).joined(separator: ", "))
    }
}

/// Answers a ``MethodNotAllowedResponder`` probe: `204` when the router matched a route (it
/// names the endpoint before calling the route's middleware), else `404`. Other requests pass.
/// It must be the router's first middleware, so a probe runs nothing else.
struct MethodProbeMiddleware: RouterMiddleware {
    typealias Context = VigilRequestContext

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        guard context.isMethodProbe else { return try await next(request, context) }
        guard context.coreContext.endpointPath.value != nil else { throw HTTPError(.notFound) }
        return Response(status: .noContent)
    }
}

extension Response {
    func with(header name: HTTPField.Name, _ value: String) -> Response {
        var response = self
        response.headers[name] = value
        return response
    }
}
