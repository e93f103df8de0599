import EventStore
import Foundation
import Logging
import PostgresNIO

/// ``Projection/batchInterval``s.
public enum BatchInterval {
    /// For the read models a detection's answer and its `GET` don't wait on (cameras'
    /// `last_seen_at`, analytics, the pipeline's counts, the batch aggregator): at 200
    /// detections/s each applies 40 batches a second instead of 200. Measured with `vigil bench
    /// ingest` (docs/BENCHMARKS.md, 2026-11-30): single POSTs +24%, POST → visible p50 −45%.
    public static let background = Duration.milliseconds(25)
}

/// A read model built from the log.
///
/// Its tables live in one PostgreSQL schema per generation (`projection_<name>_<generation>`);
/// views in `public` named like the tables point at the live generation, so readers query
/// `public.<table>` and never notice a rebuild. ``createTables(on:logger:)`` and
/// ``apply(_:on:logger:)`` run with `search_path` set to the generation's schema, so their SQL
/// names tables unqualified.
///
/// `apply` gets the events of one page, in log order, and writes with set-based SQL inside the
/// runner's transaction: the runner commits the rows and the checkpoint together, so an event
/// is applied exactly once even if the process dies between or inside batches.
public protocol Projection: Sendable {
    /// Unique name (`[a-z][a-z0-9_]*`): the key of its checkpoints, its lease and its schemas.
    var name: String { get }
    /// The events it needs (the runner skips the rest, and still moves its checkpoint past them).
    var filter: LogFilter { get }
    /// Creates the read model's tables and indexes in an empty generation schema.
    func createTables(on connection: PostgresConnection, logger: Logger) async throws
    func apply(_ events: [RecordedEvent], on connection: PostgresConnection, logger: Logger) async throws
    /// For projections that act on time as well as on events (the batch aggregator closes
    /// quiet batches): when the log is quiet this long, `apply` is called with no events.
    var heartbeat: Duration? { get }
    /// A reactor appends events of its own (in the runner's transaction, with its
    /// checkpoint). Its output is in the log, so it is never rebuilt: a rebuild would decide
    /// everything again. Its DDL must be idempotent (`IF NOT EXISTS`): it runs again on its live
    /// generation at every registration, so tables added in a later version reach it.
    var isReactor: Bool { get }
    /// The version of what it stores: raised when a change of the code makes a generation built
    /// by the earlier code wrong or incomplete (a table or column added, a meaning changed). A
    /// server that finds the live generation built by an older version rebuilds it, the old
    /// one serving meanwhile. Reactors are never rebuilt: their DDL must stay idempotent.
    var version: Int32 { get }
    /// Keeps what retention archived (the audit trail: who did what stays after the data it
    /// was about has gone): retention doesn't rebuild it, and a rebuild applies the archive
    /// segments (``ProjectionRunner/Options/archiveDirectory``) before the table.
    var replaysArchive: Bool { get }
    /// The least time between the starts of two batches of its live runner that apply events
    /// (zero: none). Under a flood of detections it applies them in fewer, larger batches,
    /// leaving the cores to the writes and to the read models a client waits on; its rows are
    /// then up to this much later. A quiet log waits for nothing: the first event after a pause
    /// is applied at once. ``BatchInterval/background`` for the read models no answer waits on
    /// for a detection.
    var batchInterval: Duration { get }
}

extension Projection {
    public var heartbeat: Duration? { nil }
    public var isReactor: Bool { false }
    public var version: Int32 { 1 }
    public var replaysArchive: Bool { false }
    public var batchInterval: Duration { .zero }

    /// Runs the `.sql` files of `projections/<name>/` in name order.
    public func createTables(on connection: PostgresConnection, logger: Logger) async throws {
        let directory = Migrator.schemasDirectory().deletingLastPathComponent()
            .appendingPathComponent("projections").appendingPathComponent(name)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".sql") }.sorted()
        for file in files {
            let script = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            for statement in SQLScript.statements(in: script) {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
        }
    }

    /// The schema holding `generation`'s tables.
    public func schema(generation: Int32) -> String { "projection_\(name)_\(generation)" }
}
