import Foundation
import Logging
import Synchronization
import Testing

/// The last log records of an application under test, down to `debug`: what its services
/// (ServiceLifecycle, the runners, the workers) did, for ``withHangWatch(_:logs:_:)`` to
/// show when a test hangs. Bounded.
final class RecentLogs: Sendable {
    /// The running test's (set by ``withScratchDatabase(_:)``).
    @TaskLocal static var current: RecentLogs?

    private let records = Mutex<[String]>([])
    private let capacity = 300

    func append(_ record: String) {
        records.withLock { records in
            if records.count == capacity { records.removeFirst(capacity / 3) }
            records.append(record)
        }
    }

    var text: String { records.withLock { $0.joined(separator: "\n") } }

    /// A logger that writes what `base` writes and keeps every record down to `debug` here.
    func logger(over base: Logger) -> Logger {
        let recent = self
        // The multiplexer logs at the lowest of its handlers' levels: the printer keeps `base`'s.
        return Logger(label: base.label) { label in
            var printer = StreamLogHandler.standardOutput(label: label)
            printer.logLevel = base.logLevel
            return MultiplexLogHandler([printer, Recorder(recent: recent)])
        }
    }

    private struct Recorder: LogHandler {
        let recent: RecentLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        // swift-format-ignore: AlwaysUseLowerCamelCase
        func log(event: LogEvent) {
            let fields = (metadata.merging(event.metadata ?? [:]) { $1 }).map { "\($0)=\($1)" }.sorted()
            recent.append(
                "\(Date().formatted(.iso8601)) \(event.level) [\(event.source)] \(event.message) \(fields.joined(separator: " "))"
            )
        }
    }
}

/// Runs `body` (a test with its application); if it hasn't returned after `limit`, the test
/// is hung: the test's name, what it was in, and its last log records go to
/// standard error and `.data/test-hangs.log`, and the test process stops there, so that a hang
/// is a failure with a cause to read rather than a run that never ends. (A test waits on
/// nothing for minutes; the longest take about three under load.) `VIGIL_TEST_HANG_SECONDS`
/// sets the limit (480 s).
func withHangWatch<Value: Sendable>(
    _ what: String, logs: RecentLogs, _ body: () async throws -> Value
) async throws -> Value {
    let limit = Duration.seconds(
        ProcessInfo.processInfo.environment["VIGIL_TEST_HANG_SECONDS"].flatMap(Int.init) ?? 8 * 60)
    let name = Test.current.map { "\($0.id)" } ?? "a test"
    let finished = Atomic(false)
    let watch = Task.detached {
        try await Task.sleep(for: limit)
        guard !finished.load(ordering: .acquiring) else { return }
        let report =
            "HANG: \(name) has been in \(what) for \(limit); its last log records:\n"
            + logs.text + "\n"
        FileHandle.standardError.write(Data(report.utf8))
        try? FileManager.default.createDirectory(atPath: ".data", withIntermediateDirectories: true)
        if let file = FileHandle(forWritingAtPath: ".data/test-hangs.log")
            ?? (FileManager.default.createFile(atPath: ".data/test-hangs.log", contents: nil)
                ? FileHandle(forWritingAtPath: ".data/test-hangs.log") : nil)
        {
            file.seekToEndOfFile()
            file.write(Data(report.utf8))
            try? file.close()
        }
        fatalError("\(name) hung in \(what): see .data/test-hangs.log")
    }
    defer {
        finished.store(true, ordering: .releasing)
        watch.cancel()
    }
    do {
        return try await body()
    } catch {
        // A thrown error's description may say nothing (PSQLError's is "Generic description to
        // prevent accidental leakage…"): the whole of it and the application's last records.
        Issue.record("\(name) threw in \(what): \(String(reflecting: error))\nits last log records:\n\(logs.text)")
        throw error
    }
}
