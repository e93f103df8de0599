import Foundation
import Logging
import Synchronization

/// How a live feed's tail of the log is doing, in the seed's circuit-breaker words for
/// `GET /api/system/health/websocket`: `closed` while it reads, `open` from a failed read until
/// one succeeds again, with the failures in a row and the last one. Also the feed's retry loop
/// (``keepReading(_:logger:_:)``), so that the two feeds fail and recover the same way.
final class TailHealth: Sendable {
    private let state = Mutex<(failures: Int, last: (at: Date, error: String)?)>((0, nil))

    /// A read went through: the breaker is closed.
    func succeeded() {
        state.withLock { if $0.failures != 0 { $0.failures = 0 } }
    }

    var failures: Int { state.withLock { $0.failures } }

    /// Runs `body` (the feed's reading, which calls ``succeeded()`` as it moves on) until the
    /// task is cancelled; a failure is logged as `what` and counted, and the reading starts
    /// again after a backoff (100 ms doubling to 5 s, by failures in a row).
    func keepReading(_ what: String, logger: Logger, _ body: () async throws -> Void) async {
        while !Task.isCancelled {
            do {
                try await body()
            } catch {
                if Task.isCancelled { break }
                let failures = state.withLock { state in
                    state.failures += 1
                    // Reflecting: PSQLError's plain description hides the server's message.
                    state.last = (Date(), String(reflecting: error))
                    return state.failures
                }
                logger.warning(
                    "\(what), reading again",
                    metadata: ["error": "\(String(reflecting: error))", "failures": "\(failures)"])
                try? await Task.sleep(for: min(.milliseconds(100) * (1 << min(failures - 1, 6)), .seconds(5)))
            }
        }
    }

    /// `{"state", "failures", "last_failure": {"at", "error"} | null}` and `extra` fields.
    func write(into object: inout JSONWriter.ObjectWriter) {
        let (failures, last) = state.withLock { ($0.failures, $0.last) }
        object.field("state", failures > 0 ? "open" : "closed")
        object.field("failures", failures)
        if let last {
            object.object("last_failure") {
                $0.field("at", JSONWriter.microseconds(last.at))
                $0.field("error", last.error)
            }
        } else {
            object.field("last_failure", nil as String?)
        }
    }
}
