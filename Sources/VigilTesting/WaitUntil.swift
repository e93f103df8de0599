/// Polls `condition` until it holds; throws when `timeout` passes first.
///
/// The one way tests wait for something asynchronous (a read model following the log, a
/// server coming back). It throws rather than returning, so a test that waited in vain stops
/// there instead of asserting on a state it never reached. A condition that throws is retried
/// (a server still starting), and its last error goes into the timeout's message.
public func waitUntil(
    _ what: String,
    timeout: Duration = .seconds(120),
    poll: Duration = .milliseconds(20),
    _ condition: () async throws -> Bool
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var lastError: (any Error)?
    while true {
        do {
            if try await condition() { return }
            lastError = nil
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            lastError = error
        }
        guard clock.now < deadline else {
            let reason = lastError.map { " (last error: \(String(reflecting: $0)))" } ?? ""
            throw TestSetupError("timed out after \(timeout) waiting until \(what)\(reason)")
        }
        try await Task.sleep(for: poll)
    }
}
