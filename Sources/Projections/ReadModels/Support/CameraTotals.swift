import Domain
import PostgresNIO

/// What `detections` and `security_events` share: rows hidden when their camera is removed
/// (soft delete), and tables counting the visible rows per camera (`count` without a scan):
/// `detection_totals`, and `security_events`' score histogram.
enum CameraTotals {
    /// SQL that adds the visible rows of the CTE `inserted` (which returns `camera_id` and
    /// `hidden`) to `totals`.
    static func add(from inserted: String, to totals: String) -> String {
        """
        INSERT INTO \(totals) (camera_id, n)
        SELECT camera_id, count(*) FROM \(inserted) WHERE NOT hidden GROUP BY camera_id
        ON CONFLICT (camera_id) DO UPDATE SET n = \(totals).n + excluded.n
        """
    }

    /// Statements that hide, in `table`, the rows of the cameras a run of `CameraRemoved` names,
    /// and zero their totals.
    static func hide(_ removals: EventRun, in table: String, totals: String) -> [PostgresQuery] {
        [
            hideRows(removals, in: table),
            removals.query { "UPDATE \(totals) SET n = 0 WHERE camera_id = \(removed($0))" },
        ]
    }

    /// The statement that hides, in `table`, the rows of the cameras a run of `CameraRemoved`
    /// names.
    static func hideRows(_ removals: EventRun, in table: String) -> PostgresQuery {
        removals.query { "UPDATE \(table) SET hidden = true WHERE NOT hidden AND camera_id = \(removed($0))" }
    }

    /// `ANY (…)` of the cameras the events of a run's `rows` (``EventRun/rows(_:)``) name by
    /// `id` (`CameraRemoved`, `CameraRegistered`): a condition's right-hand side for `camera_id =`.
    static func removed(_ rows: String) -> String { "ANY (ARRAY(SELECT data->>'id' FROM \(rows) AS e(data, pos)))" }
}

/// The cameras removed and not registered again, as far as a read model has applied the log:
/// `detections`, `security_events` and `analytics` each keep their own table of them
/// (`detection_removed_cameras`, `security_event_removed_cameras`, `analytics_removed_cameras`),
/// moved by `CameraRemoved` and `CameraRegistered` (both barriers: applied where they stand).
///
/// A removal hides what was recorded before it (``CameraTotals``). What lands in the log after
/// it for a camera still removed must be hidden too: a detection whose POST checked the camera
/// just before its removal committed, and the security events the batch aggregator opens for
/// detections from before the removal — it appends them when it gets to them, after the
/// removal in the log (once visible for good: session 47's sweep).
enum RemovedCameras {
    /// The statement that marks, in `table` (the read model's own: every table gets a view of
    /// its name in `public`), the cameras a run of `CameraRemoved` or `CameraRegistered` names
    /// as removed, or no longer.
    static func apply(_ run: EventRun, in table: String) -> PostgresQuery {
        if run.type == CameraRegistered.type {
            return run.query { "DELETE FROM \(table) WHERE camera_id = \(CameraTotals.removed($0))" }
        }
        return run.query { rows in
            """
            INSERT INTO \(table) (camera_id)
            SELECT DISTINCT data->>'id' FROM \(rows) AS e(data, pos)
            ON CONFLICT (camera_id) DO NOTHING
            """
        }
    }

    /// Whether the camera `camera` (an SQL expression) stands removed, by `table`.
    static func isRemoved(_ camera: String, in table: String) -> String {
        "EXISTS (SELECT 1 FROM \(table) r WHERE r.camera_id = \(camera))"
    }
}
