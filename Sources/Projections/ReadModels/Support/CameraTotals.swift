import PostgresNIO

/// What `detections` and `security_events` share: rows hidden when their camera is removed
/// (soft delete), and tables counting the visible rows per camera (`count` without a scan):
/// `detection_totals`, and `security_events`' score histogram.
enum CameraTotals {
    /// SQL that adds the rows of the CTE `inserted` (which returns `camera_id`) to `totals`.
    static func add(from inserted: String, to totals: String) -> String {
        """
        INSERT INTO \(totals) (camera_id, n)
        SELECT camera_id, count(*) FROM \(inserted) GROUP BY camera_id
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

    /// `ANY (…)` of the cameras the `CameraRemoved` events of a run's `rows` (``EventRun/rows(_:)``)
    /// name: a condition's right-hand side for `camera_id =`.
    static func removed(_ rows: String) -> String { "ANY (ARRAY(SELECT data->>'id' FROM \(rows) AS e(data, pos)))" }
}
