import Domain
import EventStore
import Logging
import PostgresNIO

/// `zones`: the zones of every camera, as `/api/cameras/{camera_id}/zones` lists them. Every
/// zone event is a barrier (they are rare, and a zone's create, updates and delete must apply
/// in order), so each applies where it stands. A camera's removal takes its zones with it: the
/// same name registered again is a fresh camera, without the old one's zones.
public struct ZonesProjection: RunBasedProjection {
    public let name = "zones"
    static let types = [ZoneCreated.type, ZoneUpdated.type, ZoneDeleted.type, CameraRemoved.type]
    public let filter = LogFilter(types: Self.types)
    public let barriers = Set(Self.types)
    /// 2: a removed camera's zones leave (they came back with a camera registered again).
    public let version: Int32 = 2

    public init() {}

    /// The columns of a zone from its definition (`d`, a JSON object) .
    static let definition = """
        d->>'name', d->>'zone_type', d->'coordinates', d->>'shape', d->>'color', (d->>'enabled')::boolean,
        (d->>'priority')::integer
        """

    public func apply(_ segments: [EventRun.Segment], on connection: PostgresConnection, logger: Logger) async throws {
        try await applyRuns(segments, on: connection, logger: logger) { run in
            switch run.type {
            case ZoneCreated.type:
                return [
                    run.query { rows in
                        """
                        INSERT INTO zones (id, camera_id, name, zone_type, coordinates, shape, color, enabled, priority,
                                           created_at, updated_at)
                        SELECT e.data->>'id', e.data->>'camera_id', \(Self.definition),
                               (e.data->>'created_at')::timestamptz, (e.data->>'created_at')::timestamptz
                        FROM \(rows) AS e(data, pos) CROSS JOIN LATERAL (SELECT e.data->'zone' AS d) AS z
                        ON CONFLICT (id) DO NOTHING
                        """
                    }
                ]
            case ZoneUpdated.type:
                return [
                    run.query { rows in
                        """
                        UPDATE zones AS t
                        SET (name, zone_type, coordinates, shape, color, enabled, priority, updated_at) =
                            (SELECT \(Self.definition), u.updated_at FROM (SELECT u.zone AS d) AS z)
                        FROM (SELECT DISTINCT ON (e.data->>'id') e.data->>'id' AS id, e.data->'zone' AS zone,
                                     (e.data->>'updated_at')::timestamptz AS updated_at
                              FROM \(rows) AS e(data, pos) ORDER BY e.data->>'id', e.pos DESC) AS u
                        WHERE t.id = u.id
                        """
                    }
                ]
            case ZoneDeleted.type:
                return [
                    run.query { rows in
                        "DELETE FROM zones WHERE id IN (SELECT e.data->>'id' FROM \(rows) AS e(data, pos))"
                    }
                ]
            case CameraRemoved.type:
                return [run.query { "DELETE FROM zones WHERE camera_id = \(CameraTotals.removed($0))" }]
            default:
                return []
            }
        }
    }
}
