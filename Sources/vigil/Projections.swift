import ArgumentParser
import EventStore
import Foundation
import Logging
import Projections
import Synchronization

struct ProjectionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "projections",
        abstract: "Inspect the projections.",
        subcommands: [Status.self, Rebuild.self, Retry.self, Checksum.self]
    )

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Checkpoint, lag and state of every projection."
        )

        func run() async throws {
            let logger = Vigil.logger
            let settings = try PostgresSettings.fromEnvironment()
            try await requireMigrated(settings, logger: logger)
            let statuses = try await settings.withRunningClient(logger: logger) { client in
                try await EventStore(client: client, logger: logger).projectionStatuses()
            }
            guard !statuses.isEmpty else {
                print("no projections have run on \(settings.database) yet")
                return
            }
            print(
                "name".padding(toLength: 24, withPad: " ", startingAt: 0)
                    + "state     lag events  lag s     applied  parked  last error")
            for status in statuses {
                print(
                    status.name.padding(toLength: 24, withPad: " ", startingAt: 0)
                        + status.state.padding(toLength: 10, withPad: " ", startingAt: 0)
                        + String(
                            format: "%10d %7.1f %11d %7d  ", status.lagEvents, status.lagSeconds, status.eventsApplied,
                            status.parkedEvents)
                        + (status.lastError ?? "-")
                )
                if status.parkedEvents > 0 {
                    print(
                        "  \(status.parkedEvents) parked event(s): GET /api/projections/\(status.name)/parked; "
                            + "after a fix, `vigil projections retry \(status.name)`")
                }
                if let rebuild = status.rebuild {
                    print(
                        "  rebuilding generation \(rebuild.generation): "
                            + String(format: "%.1f%%", rebuild.progress * 100)
                            + (rebuild.estimatedSecondsLeft.map { String(format: ", about %.0f s left", $0) } ?? "")
                    )
                }
            }
        }
    }

    struct Rebuild: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rebuild read models from the start of the log into new generations, without downtime.",
            discussion: """
                The live generation keeps serving while the new one is built; when the new one has \
                caught up it is swapped in atomically. Several read models rebuild in parallel. The work \
                is done by whichever process holds a projection's rebuild lease: a running `vigil serve`, \
                or, with --wait, this command itself if no other process runs the projection.
                """
        )

        @Argument(
            help: ArgumentHelp("The read models (" + ReadModels.all.map { $0.name }.joined(separator: ", ") + ")."))
        var names: [String] = []

        @Flag(help: "Rebuild every read model.")
        var all = false

        @Flag(help: "Wait until the new generations are live, showing progress.")
        var wait = false

        func validate() throws {
            guard all != !names.isEmpty else {
                throw ValidationError("name the read models to rebuild, or give --all (not both)")
            }
        }

        func run() async throws {
            let logger = Vigil.logger
            let projections =
                try all
                ? ReadModels.all
                : names.map { name in
                    guard let projection = ReadModels.named(name) else {
                        throw fail(
                            "no projection named \(name); known: \(ReadModels.all.map(\.name).joined(separator: ", "))",
                            code: 2)
                    }
                    return projection
                }
            let settings = try PostgresSettings.fromEnvironment()
            try await requireMigrated(settings, logger: logger)
            try await settings.withRunningClient(logger: logger) { client in
                let store = EventStore(client: client, logger: logger)
                var generations: [String: Int32] = [:]
                for projection in projections {
                    let generation = try await store.requestRebuild(of: projection)
                    generations[projection.name] = generation
                    FileHandle.standardOutput.write(
                        Data("rebuilding \(projection.name) into generation \(generation)\n".utf8))
                }
                guard wait else { return }
                let notifier = LogNotifier(client: client, logger: logger)
                var options = ProjectionRunner.Options()
                options.archiveDirectory = Environment.string("VIGIL_ARCHIVE_DIR")
                let runners = projections.map {
                    ProjectionRunner(projection: $0, store: store, notifier: notifier, options: options)
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await notifier.run() }
                    for runner in runners { group.addTask { try await runner.run() } }
                    defer { group.cancelAll() }
                    try await Self.follow(generations, store: store)
                }
            }
        }

        /// Draws a progress bar until every read model's new generation (`generations`, by
        /// name) is live.
        static func follow(_ generations: [String: Int32], store: EventStore) async throws {
            let started = ContinuousClock.now
            var lastLine = ""
            var done: [String: ProjectionStatus] = [:]
            while true {
                var progress: [String: Double] = [:]
                var notes: [String] = []
                let statuses = try await store.projectionStatuses()
                for (name, generation) in generations where done[name] == nil {
                    guard let status = statuses.first(where: { $0.name == name }) else {
                        throw fail("projection \(name) disappeared")
                    }
                    if let rebuild = status.rebuild {
                        progress[name] = rebuild.progress
                        if rebuild.parkedEvents > 0 { notes.append("\(name): \(rebuild.parkedEvents) parked") }
                        if let error = status.lastError { notes.append("\(name): last error: \(error)") }
                    } else {
                        guard status.generation >= generation else {
                            throw fail("the rebuild of \(name) was abandoned")
                        }
                        done[name] = status
                    }
                }
                if done.count == generations.count { break }
                let overall = (progress.values.reduce(0, +) + Double(done.count)) / Double(generations.count)
                let line =
                    "\r\(ProgressLine.bar(overall)) " + String(format: "%5.1f%%  ", overall * 100)
                    + progress.sorted(by: { $0.key < $1.key }).map { "\($0.key) \(Int($0.value * 100))%" }
                    .joined(separator: ", ") + (notes.isEmpty ? "" : "  " + notes.joined(separator: "; "))
                if line != lastLine {
                    FileHandle.standardOutput.write(Data((line + "   ").utf8))
                    lastLine = line
                }
                try await Task.sleep(for: .milliseconds(250))
            }
            let elapsed = started.duration(to: .now)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            FileHandle.standardOutput.write(
                Data(("\r\(ProgressLine.bar(1))  done in " + String(format: "%.1f s", seconds)).utf8))
            FileHandle.standardOutput.write(Data((String(repeating: " ", count: 40) + "\n").utf8))
            for (name, status) in done.sorted(by: { $0.key < $1.key }) {
                FileHandle.standardOutput.write(
                    Data(
                        "\(name): generation \(status.generation) is live, \(status.eventsApplied) events applied\n"
                            .utf8))
                if status.parkedEvents > 0 {
                    FileHandle.standardOutput.write(
                        Data(
                            ("\(status.parkedEvents) event(s) could not be applied and are parked: "
                                + "GET /api/projections/\(name)/parked\n").utf8))
                }
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply a projection's parked events again (after the fix that lets them apply).",
            discussion: """
                The projection's live runner (in a running `vigil serve`) applies them within a few \
                seconds, in log order; those that still fail stay parked with the new error. They are \
                applied after the events that followed them: where order matters to a read model, \
                `vigil projections rebuild NAME` gives the exact result.
                """
        )

        @Argument(help: "The projection.")
        var name: String

        func run() async throws {
            let logger = Vigil.logger
            let settings = try PostgresSettings.fromEnvironment()
            try await requireMigrated(settings, logger: logger)
            // A name no server registered parks nothing: said so, not "0 parked events".
            let (count, known) = try await settings.withRunningClient(logger: logger) { client in
                let store = EventStore(client: client, logger: logger)
                // Those a server registered here, and every read model (one not registered yet
                // has nothing parked).
                let known = Set(try await store.projectionStatuses().map(\.name) + ReadModels.all.map(\.name)).sorted()
                return (known.contains(name) ? try await store.retryParkedEvents(of: name) : nil, known)
            }
            guard let count else {
                throw fail("no projection named \(name); known: \(known.joined(separator: ", "))", code: 2)
            }
            print("\(count) parked event(s) of \(name) will be applied again by its runner")
        }
    }

    struct Checksum: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Row count and md5 of every table of every read model's live generation.",
            discussion: """
                Two stores whose read models hold the same rows print the same lines: compare a store \
                with its copy after `vigil export` and `vigil import` (once both have built their read \
                models), or a read model before and after a rebuild.
                """
        )

        func run() async throws {
            let logger = Vigil.logger
            let settings = try PostgresSettings.fromEnvironment()
            try await requireMigrated(settings, logger: logger)
            let checksums = try await settings.withRunningClient(logger: logger) { client in
                try await EventStore(client: client, logger: logger).readModelChecksums()
            }
            for checksum in checksums {
                print(
                    "\(checksum.projection).\(checksum.table)".padding(toLength: 44, withPad: " ", startingAt: 0)
                        + String(checksum.rows).padding(toLength: 10, withPad: " ", startingAt: 0) + checksum.md5)
            }
        }
    }
}
