import ArgumentParser
import Foundation
import Logging

/// `vigil bench`: the benchmarks, in a module of their own so that what they need (synthetic
/// histories, scratch databases, a server on a loopback port) stays out of the server's modules.
public struct Bench: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print figures and ratios against a baseline measured in the same run.",
        subcommands: [
            AppendBenchmark.self, PagesBenchmark.self, IngestBenchmark.self, SeverityBenchmark.self,
            WebSocketBenchmark.self, FanoutServer.self, ArchiveBenchmark.self, RetentionBenchmark.self,
        ]
    )

    public init() {}

    /// The benchmarks' logger: warnings and errors only, so the tables stay readable. Logging is
    /// bootstrapped by the executable before any command runs.
    static func quietLogger() -> Logger {
        var logger = Logger(label: "vigil")
        logger.logLevel = .warning
        return logger
    }

    /// A fresh temporary folder, removed by the caller (`defer`), that the PostgreSQL server can
    /// enter too: it writes `COPY … TO` files there.
    static func scratchDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "vigil-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: directory.path)
        return directory
    }
}

/// The size of a synthetic history (``PagesBenchmark/appendHistory(_:to:)``) for the benchmarks
/// that build one and work on it whole (archive, retention).
struct HistorySize: ParsableArguments {
    @Option(help: "Security events in the history (each with one detection: four log events).")
    var events = 250_000

    @Flag(help: "A small run (20,000 security events).")
    var quick = false

    var securityEvents: Int { quick ? 20_000 : events }
}

/// One row of a benchmark table.
struct Measurement {
    var name: String
    var events: Int
    var calls: Int
    var elapsed: Duration
    /// Duration of each call (one COPY, one transaction, one append…).
    var latencies: [Duration]

    var eventsPerSecond: Double { Double(events) / elapsed.seconds }

    func percentile(_ p: Double) -> Double { latencies.percentileMilliseconds(p) }
}

extension Array where Element == Duration {
    /// The `p` quantile (nearest rank) in milliseconds; 0 when empty.
    func percentileMilliseconds(_ p: Double) -> Double {
        guard !isEmpty else { return 0 }
        let sorted = self.sorted()
        let index = Swift.min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)
        return sorted[Swift.max(0, index)].seconds * 1000
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

/// `text` padded with spaces to `width`: on the left (right-aligned), or on the right when `left`.
func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
    let padding = String(repeating: " ", count: max(0, width - text.count))
    return left ? text + padding : padding + text
}

/// Prints rows as an aligned table with each row's throughput as a ratio to `baseline`.
func printTable(_ rows: [Measurement], baseline: Measurement) {
    print(
        pad("path", 58, left: true) + pad("events", 9) + pad("calls", 8) + pad("events/s", 11) + pad("p50 ms", 9)
            + pad("p99 ms", 9) + pad("vs COPY", 9)
    )
    for row in rows {
        let ratio = row.eventsPerSecond / baseline.eventsPerSecond
        print(
            pad(row.name, 58, left: true) + pad("\(row.events)", 9) + pad("\(row.calls)", 8)
                + pad(String(format: "%.0f", row.eventsPerSecond), 11)
                + pad(String(format: "%.2f", row.percentile(0.50)), 9)
                + pad(String(format: "%.2f", row.percentile(0.99)), 9)
                + pad(String(format: "%.3f", ratio), 9)
        )
    }
}
