import Domain
import Foundation
import Logging
import Projections
import ServiceLifecycle
import Synchronization

/// Keeps the server's own log records at or above a level (`VIGIL_LOG_RECORD_LEVEL`, warning) in
/// `operational_logs`, for `/api/logs`, and deletes records older than the retention.
///
/// A log call never waits for the database: ``handler(wrapping:)`` puts the record in a bounded
/// buffer, and the service writes the buffer every second (once more at shutdown). While the
/// database is away the records wait (up to ``capacity``); what the buffer can't hold is counted,
/// and a record of that loss is stored when the database is back: never a silent drop. The
/// recorder's own warnings go only to the server's other log handlers (no loop).
final class LogRecorder: Service, Sendable {
    private let logs: OperationalLogs
    let level: Logger.Level
    private let retention: Duration
    private let interval: Duration
    /// The server's logger as it was before recording (the recorder's own messages go there).
    private let logger: Logger
    let capacity: Int
    private let pending = Mutex<(records: [LogRecord], dropped: Int)>(([], 0))
    private let failing = Mutex(false)

    /// The longest message and `extra` a backend record keeps (longer ones are cut).
    static let maxMessage = 10_000
    static let maxExtra = 16_384

    init(
        logs: OperationalLogs, level: Logger.Level, retention: Duration, logger: Logger,
        interval: Duration = .seconds(1), capacity: Int = 10_000
    ) {
        self.logs = logs
        self.level = level
        self.retention = retention
        self.logger = logger
        self.interval = interval
        self.capacity = capacity
    }

    /// `handler` and this recorder: every record still goes to `handler`, and those at or above
    /// ``level`` are recorded too.
    func handler(wrapping handler: any LogHandler) -> any LogHandler {
        MultiplexLogHandler([handler, RecordingLogHandler(recorder: self, logLevel: level)])
    }

    func record(_ record: LogRecord) {
        pending.withLock { pending in
            if pending.records.count < capacity { pending.records.append(record) } else { pending.dropped += 1 }
        }
    }

    /// Writes what is waiting; on failure it waits for the next try.
    func flush() async {
        let (records, dropped) = pending.withLock { pending in
            defer { pending = ([], 0) }
            return pending
        }
        var batch = records
        if dropped > 0 {
            batch.append(
                LogRecord(
                    loggedAt: Date(), level: .warning, component: "logs",
                    message: "\(dropped) log record(s) were not kept: the buffer was full while the database was away",
                    extra: #"{"dropped":\#(dropped)}"#, source: .backend))
        }
        guard !batch.isEmpty else { return }
        do {
            try await logs.insert(batch)
            if failing.withLock({ Self.exchange(&$0, false) }) { logger.info("log records are stored again") }
        } catch {
            if !failing.withLock({ Self.exchange(&$0, true) }) {
                logger.warning(
                    "log records not stored, kept for the next try", metadata: ["error": "\(String(reflecting: error))"]
                )
            }
            // Back in front of what came meanwhile, as far as the buffer holds; the rest is counted.
            pending.withLock { pending in
                let kept = records.prefix(max(0, capacity - pending.records.count))
                pending.records.insert(contentsOf: kept, at: 0)
                pending.dropped += dropped + records.count - kept.count
            }
        }
    }

    /// Sets `flag` to `value` and returns what it was.
    private static func exchange(_ flag: inout Bool, _ value: Bool) -> Bool {
        defer { flag = value }
        return flag
    }

    func deleteExpired() async {
        let cutoff = Date().addingTimeInterval(-Double(retention.components.seconds))
        do {
            let deleted = try await logs.delete(before: cutoff)
            if deleted > 0 { logger.debug("expired log records deleted", metadata: ["count": "\(deleted)"]) }
        } catch is CancellationError {
            // The server stopping before its first cleanup (a port already taken, a signal):
            // the next start deletes them.
        } catch {
            logger.warning("expired log records not deleted", metadata: ["error": "\(error)"])
        }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var lastCleanup = ContinuousClock.now - .seconds(3600)
            while !Task.isCancelled {
                try? await Task.sleep(for: self.interval)
                await self.flush()
                if lastCleanup.duration(to: .now) >= .seconds(3600) {
                    await self.deleteExpired()
                    lastCleanup = .now
                }
            }
        }
        // What came last, if the database takes it within a second: a shutdown with
        // PostgreSQL down must not wait for the pool's reconnects (it held shutdown 7 s).
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.flush() }
            group.addTask { try? await Task.sleep(for: .seconds(1)) }
            await group.next()
            group.cancelAll()
        }
    }

    /// A backend record of a swift-log event.
    static func record(_ event: LogEvent, metadata: Logger.Metadata) -> LogRecord {
        var extra = metadata
        let component = extra.removeValue(forKey: "component").map { "\($0)" } ?? event.source
        let camera = extra.removeValue(forKey: "camera_id").map { "\($0)" }
        let request = extra.removeValue(forKey: "request_id").map { "\($0)" }
        if let error = event.error { extra["error"] = "\(String(reflecting: error))" }
        var extraJSON =
            (try? JSONEncoder().encode(JSONValue.object(extra.mapValues(Self.json))))
            .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        extraJSON = clean(extraJSON)
        if extraJSON.utf8.count > maxExtra { extraJSON = #"{"truncated":true}"# }
        return LogRecord(
            loggedAt: Date(), level: level(event.level), component: clean(component),
            message: String(clean(event.message.description).prefix(maxMessage)), cameraId: camera.map(clean),
            requestId: request.map(clean), extra: extraJSON, source: .backend)
    }

    static func level(_ level: Logger.Level) -> LogRecord.Level {
        switch level {
        case .trace, .debug: .debug
        case .info, .notice: .info
        case .warning: .warning
        case .error: .error
        case .critical: .critical
        }
    }

    static func json(_ value: Logger.MetadataValue) -> JSONValue {
        switch value {
        case .string(let text): .string(text)
        case .stringConvertible(let value): .string(value.description)
        case .array(let values): .array(values.map(json))
        case .dictionary(let values): .object(values.mapValues(json))
        }
    }

    /// Text PostgreSQL can store: NUL (also as JSON's `\u0000`) becomes U+FFFD.
    static func clean(_ text: String) -> String {
        text.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}").replacingOccurrences(of: "\\u0000", with: "\\ufffd")
    }
}

/// The recorder's side of the server's log handler (see ``LogRecorder/handler(wrapping:)``).
struct RecordingLogHandler: LogHandler {
    let recorder: LogRecorder
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(recorder: LogRecorder, logLevel: Logger.Level) {
        self.recorder = recorder
        self.logLevel = logLevel
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let own = event.metadata { merged.merge(own) { $1 } }
        recorder.record(LogRecorder.record(event, metadata: merged))
    }
}
