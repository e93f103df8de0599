import Domain
import EventStore
import Foundation
import Hummingbird
import Logging
import Synchronization

/// What a write route does, for the audit trail: the action and resource a refusal of it is
/// recorded as (its success is recorded from the event it appends).
struct AuditedCommand: Sendable, Hashable {
    var action: String
    var resourceType: String
    /// The path parameter naming the resource, if the route has one.
    var idParameter: String?
    /// The resource's id when there is only one (the settings: `system`, `severity`,
    /// `rate_limits`), as the entries of its successful changes name it.
    var singleton: String?
}

/// Records refused commands (``CommandRejected``) so the audit trail shows failures: `401` and
/// `403` from ``AuthMiddleware``, `400`, `409` and `422` from the handlers
/// (``RejectionMiddleware``). Only write routes of ``AccessPolicy/audited`` count.
///
/// Rate-limited, so nobody floods the log with refusals: per actor and client address, a bucket
/// of `burst` records that refills one every `interval`; the refusals beyond it are counted and
/// the next one recorded carries the count (`suppressed`).
final class RejectionRecorder: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
        var suppressed = 0
    }

    private let appender: GroupCommitAppender
    private let logger: Logger
    private let burst: Double
    private let interval: Duration
    private let buckets = Mutex<[String: Bucket]>([:])

    init(appender: GroupCommitAppender, logger: Logger, burst: Int = 20, interval: Duration = .seconds(3)) {
        self.appender = appender
        self.logger = logger
        self.burst = Double(burst)
        self.interval = interval
    }

    /// Statuses that are a refusal of the command (not a missing resource, not an outage).
    static let refusals: Set<Int> = [400, 401, 403, 409, 413, 422]

    /// Records that `request` (on the route `context` matched) was refused with `status` and
    /// `detail`, as `actor`.
    func record(
        _ request: Request, context: some RequestContext, status: HTTPResponse.Status, detail: String, actor: String
    ) async {
        let route = context.endpointPath ?? request.uri.path
        guard Self.refusals.contains(status.code),
            let command = AccessPolicy.audited["\(request.method.rawValue) \(route)"]
        else { return }
        let resourceId =
            command.singleton ?? command.idParameter.flatMap { context.parameters.get($0) }.map { String($0) }
        await append(command, resourceId: resourceId, request, status: status.code, detail: detail, actor: actor)
    }

    /// Records a request refused by the rate limiter (`429`, action `rate_limit_exceeded`, the
    /// tier as the resource type), on any route. The limiter runs before auth: the actor is
    /// `anonymous`, the client address tells who.
    func recordRateLimited(_ request: Request, tier: RateLimitTier, detail: String) async {
        await append(
            AuditedCommand(action: "rate_limit_exceeded", resourceType: tier.rawValue), resourceId: nil, request,
            status: 429, detail: detail, actor: "anonymous")
    }

    private func append(
        _ command: AuditedCommand, resourceId: String?, _ request: Request, status: Int, detail: String, actor: String
    ) async {
        var metadata = EventMetadata(request)
        metadata.actor = actor
        guard let suppressed = take("\(actor)|\(metadata.clientAddress ?? "-")") else { return }
        let event = CommandRejected(
            action: command.action, resourceType: command.resourceType,
            resourceId: resourceId.map { $0.prefix(characters: 500) },
            method: request.method.rawValue, path: request.uri.path.prefix(characters: 2000), status: status,
            detail: detail.prefix(characters: 2000), suppressed: suppressed > 0 ? suppressed : nil, rejectedAt: Date())
        do {
            try await appender.append(to: event.stream, events: [try NewEvent(event, metadata: metadata)])
        } catch {
            logger.warning(
                "could not record a refused command", metadata: ["error": "\(error)", "path": "\(event.path)"])
        }
    }

    /// A token from `key`'s bucket: the refusals suppressed before it, or nil when it is empty.
    private func take(_ key: String) -> Int? {
        let now = ContinuousClock.now
        return buckets.withLock { buckets in
            if buckets.count > 10_000 { buckets = buckets.filter { $0.value.suppressed > 0 } }
            var bucket = buckets[key] ?? Bucket(tokens: burst, updated: now)
            let refill = (now - bucket.updated) / interval
            bucket.tokens = min(burst, bucket.tokens + refill)
            bucket.updated = now
            defer { buckets[key] = bucket }
            guard bucket.tokens >= 1 else {
                bucket.suppressed += 1
                return nil
            }
            bucket.tokens -= 1
            defer { bucket.suppressed = 0 }
            return bucket.suppressed
        }
    }
}

/// Records the refusals handlers throw (400, 409, 413, 422 on audited write routes) through
/// ``RejectionRecorder``, as the request's principal, and rethrows them.
struct RejectionMiddleware<Context: RequestContext>: RouterMiddleware {
    let recorder: RejectionRecorder

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as any HTTPResponseError {
            let detail: String =
                switch error {
                case let error as APIError: error.detail
                case let error as ValidationError:
                    error.issues.map { "\($0.location.joined(separator: ".")): \($0.message)" }.joined(separator: "; ")
                default: error.status.reasonPhrase
                }
            await record(request, context, error.status, detail)
            throw error
        } catch let error as AppendError where error.isConflict {
            await record(request, context, .conflict, "\(error)")
            throw error
        }
    }

    private func record(_ request: Request, _ context: Context, _ status: HTTPResponse.Status, _ detail: String) async {
        await recorder.record(
            request, context: context, status: status, detail: detail, actor: Principal.current?.name ?? "anonymous")
    }
}
