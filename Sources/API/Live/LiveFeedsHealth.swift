import EventStore
import Foundation
import Hummingbird

/// `GET /api/system/health/websocket`: the live feeds of this server in the seed's
/// circuit-breaker shape (`state` `closed` while a feed reads the log, `open` from a failed read
/// until one succeeds; `failures` in a row; `last_failure`), with what each serves:
///
/// - `event_broadcaster`: the `/ws/log` tail (``LogBroadcaster``): `live_subscribers` (sockets
///   fed from it; those catching up read the table), `position` (where it has read up to),
///   `fell_behind` (subscribers dropped back to the table since the start);
/// - `events_feed`: what `/ws/events` sockets are fed (``EventsFeed``): `sockets`;
/// - `system_broadcaster`: the system status (``SystemStatusFeed``): `sockets` (on `/ws/system`
///   or the `system` channel), `interval_seconds`.
struct LiveFeedsHealth: Sendable {
    let broadcaster: LogBroadcaster
    let events: EventsFeed
    let status: SystemStatusFeed

    /// Counts the open sockets per path.
    var sockets: OpenSockets? = nil

    /// Open sockets per endpoint.
    var clientCounts: [(String, Int)] {
        guard let sockets else { return [] }
        return [LogSocket.path, EventsSocket.eventsPath, EventsSocket.systemPath].map { ($0, sockets.count($0)) }
    }

    func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/api/system/health/websocket") { _, _ in
            var body = JSONWriter()
            body.object { object in
                object.object("event_broadcaster") { entry in
                    broadcaster.health.write(into: &entry)
                    entry.field("live_subscribers", broadcaster.subscriberCount)
                    entry.field("position", broadcaster.position.token)
                    entry.field("fell_behind", broadcaster.overflowCount)
                }
                object.object("events_feed") { entry in
                    events.health.write(into: &entry)
                    entry.field("sockets", events.subscriberCount)
                }
                object.object("system_broadcaster") { entry in
                    entry.field("state", "closed")
                    entry.field("failures", 0)
                    entry.field("last_failure", nil as String?)
                    entry.field("sockets", events.subscriberCount(on: .system))
                    entry.field("interval_seconds", status.interval / .seconds(1))
                }
                object.field("timestamp", JSONWriter.microseconds(Date()))
            }
            return body.response()
        }
    }
}
