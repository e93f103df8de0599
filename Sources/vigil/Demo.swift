import ArgumentParser
import EventStore
import Foundation
import Logging
import PostgresNIO
import Synthetic

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Append demo history (cameras, detections, analyzed security events) to an empty log.",
        discussion: """
            The history ends now: its security events are spread over the last --days days. Nothing is \
            written if the log already holds security events. The read models follow when `vigil serve` \
            runs.
            """
    )

    @Option(help: "How many security events (each with its detections).")
    var events = 2000

    @Option(help: "How many cameras.")
    var cameras = 4

    @Option(help: "Days of history.")
    var days = 14

    func run() async throws {
        let logger = Vigil.logger
        let settings = try PostgresSettings.fromEnvironment()
        try await requireMigrated(settings, logger: logger)
        try await settings.withRunningClient(logger: logger) { client in
            let store = EventStore(client: client, logger: logger)
            let existing =
                try await client.guardedQuery(
                    "SELECT count(*) FROM streams WHERE stream LIKE 'secevent-%'", logger: logger
                ).decode(Int64.self).first { _ in true } ?? 0
            guard existing == 0 else {
                print("demo: the log already holds \(existing) security events; nothing written")
                return
            }
            let span = Double(days) * 86_400
            let spacing = span / Double(max(events, 1))
            let history = SyntheticHistory(
                cameraCount: cameras, start: Date().addingTimeInterval(-span), spacing: spacing)
            try await store.appendSynthetic(history, events: 0..<events, detectionsPerEvent: 2)
            print("demo: appended \(cameras) cameras and \(events) security events with \(events * 2) detections")
        }
    }
}
