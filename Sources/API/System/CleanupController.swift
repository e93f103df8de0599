import Archive
import Domain
import EventStore
import Foundation
import Hummingbird
import Projections

/// `POST /api/system/cleanup` (`dry_run` as a query parameter or in a JSON body) and
/// `GET /api/system/cleanup/status`: retention, the seed's shapes with Vigil's own fields.
///
/// Security events that started more than `retention_days` (the system config) ago leave the
/// hot table with their detections and alerts; they are first written to an archive segment in
/// `VIGIL_ARCHIVE_DIR` (``RetentionArchive``), synced, and only then deleted, in the
/// transaction that appends `RetentionApplied` with the actor (`cleanup_executed` in the audit
/// trail). The read models that held them are rebuilt from the table (the old generation serves
/// meanwhile), so a rebuild and the live read model stay the same; the audit trail keeps its
/// entries, and its rebuilds replay the segments first. A dry run reads the same
/// plan and changes nothing. Without an archive folder only a dry run is possible: nothing
/// leaves the log unarchived.
struct CleanupController<Context: RequestContext> {
    let store: EventStore
    let settings: SystemSettingsReader
    let projections: [any Projection]
    let archiveDirectory: String?

    func addRoutes(to router: Router<Context>) {
        router.post("/api/system/cleanup", use: cleanup)
        router.get("/api/system/cleanup/status", use: status)
    }

    /// The read models to rebuild after a run that took events: those that read any type
    /// retention takes (reactors are never rebuilt, what they keep needs no forgetting; the
    /// audit trail keeps what was archived).
    var affected: [any Projection] {
        projections.filter { projection in
            guard !projection.isReactor, !projection.replaysArchive else { return false }
            guard let types = projection.filter.types else { return true }
            return !Set(types).isDisjoint(with: Retention.archivedTypes)
        }
    }

    @Sendable func cleanup(_ request: Request, context: Context) async throws -> Response {
        var dryRun = try QueryParameters(request).bool("dry_run")
        let bytes = try await request.body.collect(upTo: BodyLimits.json)
        if bytes.readableBytes > 0 {
            try JSONBody.requireJSONContentType(request)
            var body = try JSONBody.parse(bytes.readableBytesView)
            let value = body.bool("dry_run")
            if body.isNull("dry_run") {
                body.fail("dry_run", "Input should be a valid boolean", "bool_type")
            }
            try body.validate()
            if let value {
                if let dryRun, dryRun != value {
                    throw ValidationError(
                        location: ["body", "dry_run"], message: "dry_run differs from the query's", type: "value_error")
                }
                dryRun = value
            }
        }
        let days = try await settings.current().config.retentionDays
        let cutoff = Retention.cutoff(days: days)
        let now = Date()
        if dryRun ?? false {
            let plan = try await store.planRetention(cutoff: cutoff)
            return Self.answer(plan, segment: nil, days: days, dryRun: true, rebuilding: [], at: now)
        }
        guard let archiveDirectory else {
            throw APIError.conflict(
                "Nothing leaves the log without an archive: set VIGIL_ARCHIVE_DIR to clean up (a dry run works without)"
            )
        }
        let run: RetentionArchive.Run
        do {
            run = try await RetentionArchive(store: store, directory: archiveDirectory)
                .run(cutoff: cutoff, retentionDays: days, metadata: EventMetadata(request))
        } catch let error as RetentionBusy {
            throw APIError.conflict(error.description)
        } catch let error as RetentionConflict {
            throw APIError.conflict(error.description)
        }
        var rebuilding: [String] = []
        if run.plan.logEvents > 0 {
            for projection in affected {
                try await store.requestRebuild(of: projection, restart: true)
                rebuilding.append(projection.name)
            }
        }
        return Self.answer(run.plan, segment: run.segment, days: days, dryRun: false, rebuilding: rebuilding, at: now)
    }

    /// The seed's fields (`events_deleted`: security events; Vigil keeps no GPU samples,
    /// thumbnails or images of its own, so those are 0), then Vigil's.
    static func answer(
        _ plan: RetentionPlan, segment: ArchivedSegment?, days: Int, dryRun: Bool, rebuilding: [String], at date: Date
    ) -> Response {
        var body = JSONWriter()
        body.object { object in
            object.field("events_deleted", plan.securityEvents)
            object.field("detections_deleted", plan.detections)
            object.field("gpu_stats_deleted", 0)
            object.field("logs_deleted", plan.operationalLogs)
            object.field("thumbnails_deleted", 0)
            object.field("images_deleted", 0)
            object.field("space_reclaimed", plan.bytes)
            object.field("retention_days", days)
            object.field("dry_run", dryRun)
            object.field("timestamp", Timestamp.format(date))
            object.field("cutoff", Timestamp.format(plan.cutoff))
            object.field("alerts_deleted", plan.alerts)
            object.field("log_events_archived", plan.logEvents)
            object.field("through", plan.bound.token)
            if let segment {
                object.object("archive") { archive in
                    archive.field("segment", segment.name)
                    archive.field("file_bytes", segment.fileBytes)
                    archive.field("sha256", segment.sha256)
                }
            } else {
                object.field("archive", nil as String?)
            }
            object.array("rebuilding") { array in
                for name in rebuilding { array.string(name) }
            }
        }
        return body.response()
    }

    /// `{running, retention_days, cleanup_time, delete_images, next_cleanup, timestamp}` (Vigil
    /// runs no schedule of its own: cleanups are asked for), with the archive folder's state.
    @Sendable func status(_ request: Request, context: Context) async throws -> Response {
        let days = try await settings.current().config.retentionDays
        let segments = try await store.archivedSegments()
        var body = JSONWriter()
        body.object { object in
            object.field("running", false)
            object.field("retention_days", days)
            object.field("cleanup_time", nil as String?)
            object.field("delete_images", false)
            object.field("next_cleanup", nil as String?)
            object.field("timestamp", Timestamp.format(Date()))
            object.field("archive_configured", archiveDirectory != nil)
            object.field("segments", segments.count)
            object.field("archived_log_events", segments.reduce(0) { $0 + $1.logEvents })
            if let last = segments.last {
                object.object("last_segment") { segment in
                    segment.field("name", last.name)
                    segment.field("created_at", Timestamp.format(last.createdAt))
                    segment.field("cutoff", Timestamp.format(last.cutoff))
                    segment.field("log_events", last.logEvents)
                    segment.field("file_bytes", last.fileBytes)
                    segment.field("sha256", last.sha256)
                }
            } else {
                object.field("last_segment", nil as String?)
            }
        }
        return body.response()
    }
}
