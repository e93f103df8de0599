import Archive
import Foundation
import PostgresNIO
import Projections
import Synthetic
import Testing
import VigilTesting

@testable import EventStore

/// `vigil export` then `vigil import` into a new database: the same log, in the same order,
/// and every read model built from it equal, row for row, to the original's.
@Suite("Log archives")
struct ArchiveRoundTripTests {
    static func path(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("vigil-\(UUID().uuidString)-\(name)").path
    }

    /// Every stored column but the transaction id, one text per event, in log order.
    static func log(_ store: EventStore) async throws -> [String] {
        try await store.client.query(
            """
            SELECT concat_ws('|', position, event_id, stream, version, type, schema_version, vigil_ts(recorded_at),
                             data::text, metadata::text)
            FROM events ORDER BY tx_id, position
            """,
            logger: store.logger
        ).decode(String.self).reduce(into: [String]()) { $0.append($1) }
    }

    /// A transaction that took a lower position commits after one that took a higher one: the
    /// log's order is then not its positions' order (the archive holds two runs or more).
    static func appendOutOfPositionOrder(_ store: EventStore) async throws {
        try await store.transaction { transaction in
            // This transaction's id is taken now, before the other's.
            try await transaction.connection.query("SELECT pg_current_xact_id()", logger: store.logger)
            // A younger transaction takes a position and commits first…
            _ = try await store.append(to: "late-younger", events: [detection(sequence: 1)])
            // …and this older one takes a higher position: in the log it sorts first.
            _ = try await transaction.append(to: "late-older", events: [detection(sequence: 2)])
        }
    }

    /// Runs a runner per read model until each has passed `checkpoint`.
    static func buildReadModels(
        _ store: EventStore, _ notifier: LogNotifier, through checkpoint: Checkpoint
    )
        async throws
    {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for runner in ReadModelRebuildTests.runners(store, notifier) { group.addTask { try await runner.run() } }
            defer { group.cancelAll() }
            try await ReadModelRebuildTests.waitForReadModels(checkpoint, generation: 1, store)
        }
    }

    @Test("Exported and imported into a new database: the same log in the same order, the same read models")
    func roundTrip() async throws {
        let path = Self.path("log.ndjson.lz4")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await TestDatabase.withStoreAndNotifier { source, notifier in
            let history = SyntheticHistory(cameraCount: 4, start: ReadModelRebuildTests.start, spacing: 1800)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for runner in ReadModelRebuildTests.runners(source, notifier) {
                    group.addTask { try await runner.run() }
                }
                defer { group.cancelAll() }
                _ = try await ReadModelRebuildTests.appendEveryKindOfEvent(history, source)
                try await Self.appendOutOfPositionOrder(source)
                let taken = try await source.takeIDs(3, from: .detections)
                #expect(taken.count == 3)
                let head = try await source.append(to: "marker-2", events: [detection()]).checkpoints[0]
                try await ReadModelRebuildTests.waitForReadModels(head, generation: 1, source)
            }
            let original = try await RebuildEqualsLive.snapshot(source)
            let originalLog = try await Self.log(source)

            let summary = try await LogExporter(store: source).export(to: path)
            #expect(summary.header.events == originalLog.count)
            #expect(summary.header.runs >= 2, "the out-of-order commit starts a run")
            let detectionIDs = try #require(summary.header.sequences["detection_ids"])
            #expect(detectionIDs >= 3)
            #expect(summary.fileBytes < summary.contentBytes / 3)

            try await TestDatabase.withStoreAndNotifier { target, targetNotifier in
                let imported = try await LogImporter(store: target).importArchive(from: path)
                #expect(imported.events == originalLog.count)
                #expect(imported.runs == summary.header.runs)
                // Ids, streams, versions, positions, payloads and times, in the original order.
                let importedLog = try await Self.log(target)
                #expect(importedLog.count == originalLog.count)
                #expect(importedLog == originalLog)
                let older = try #require(importedLog.firstIndex { $0.contains("|late-older|") })
                let younger = try #require(importedLog.firstIndex { $0.contains("|late-younger|") })
                #expect(older < younger, "the log order, not the positions' order")

                let head = try await target.head()
                try await Self.buildReadModels(target, targetNotifier, through: head)
                // The new live generations caught up with the imported log as rebuilds do (pages
                // of 97 from the stretch of the log they share), then went on live.
                #expect(await target.window.tableReads > 0, "the live runners did not catch up through the window")
                let rebuilt = try await RebuildEqualsLive.snapshot(target)
                for projection in ReadModels.all {
                    let name = projection.name
                    let before = try #require(original[name]).tables
                    let after = try #require(rebuilt[name]).tables
                    #expect(after.keys.sorted() == before.keys.sorted(), "\(name)")
                    for (table, rows) in before.sorted(by: { $0.key < $1.key }) {
                        // (`removed_cameras` holds a camera only while it stands removed: none here.)
                        #expect(
                            !rows.isEmpty || table.hasSuffix("removed_cameras"),
                            "\(name).\(table) is empty: the history must fill it")
                        #expect(after[table] == rows, "\(name).\(table) differs after the import")
                    }
                    #expect(try #require(rebuilt[name]).eventsApplied == original[name]?.eventsApplied, "\(name)")
                }

                // The store goes on after the import: an imported stream takes its next version,
                // the log its next position, and no id is handed out twice.
                let version = try await target.version(of: "marker-2")
                let next = try await target.append(to: "marker-2", events: [detection()])
                #expect(try await target.version(of: "marker-2") == version + 1)
                #expect(next.checkpoints[0].position > (try await target.head()).position - 1)
                let maxPosition = try await target.client.query(
                    "SELECT max(position) FROM events WHERE stream <> 'marker-2' OR version <= \(version)",
                    logger: target.logger
                ).decode(Int64.self).reduce(0) { max($0, $1) }
                #expect(next.checkpoints[0].position > maxPosition)
                #expect(try await target.takeIDs(1, from: .detections)[0] > detectionIDs)
                let after = try await target.readSettled(after: head)
                #expect(after.events.map(\.stream) == ["marker-2"])
            }
        }
    }

    @Test("A damaged, cut, lengthened or foreign archive is refused and stores nothing; so is a non-empty store")
    func refused() async throws {
        let path = Self.path("good.ndjson.lz4")
        let bad = Self.path("bad.ndjson.lz4")
        defer {
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: bad)
        }
        try await TestDatabase.withStore { source in
            for n in 0..<40 {
                _ = try await source.append(
                    to: "camera-\(n % 3)", events: (0..<30).map { detection(sequence: n * 30 + $0) })
            }
            // A time range: events recorded in [from, to).
            let now = Date()
            let later = try await LogExporter(store: source, from: now.addingTimeInterval(3600)).export(to: bad)
            #expect(later.header.events == 0)
            #expect(later.header.from != nil)
            let earlier = try await LogExporter(store: source, to: now.addingTimeInterval(-3600)).export(to: bad)
            #expect(earlier.header.events == 0)
            let around = LogExporter(
                store: source, from: now.addingTimeInterval(-3600), to: now.addingTimeInterval(3600))
            #expect(try await around.export(to: bad).header.events == 1200)

            let summary = try await LogExporter(store: source).export(to: path)
            #expect(summary.header.events == 1200)
        }
        let file = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let content = try LZ4FrameTestsSupport.readAll(path)
        let lines = content.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        func frame(_ lines: [ArraySlice<UInt8>]) -> [UInt8] {
            Array(lines.joined(separator: [UInt8(ascii: "\n")]))
        }

        // (what, the file's bytes or nil to compress `content`, content, what the refusal says)
        var variants: [(String, [UInt8]?, [UInt8], String)] = [
            ("cut in half", Array(file[0..<(file.count / 2)]), [], "cut off"),
            ("cut before its end mark", Array(file[0..<(file.count - 4)]), [], "cut off"),
            (
                "a byte changed",
                {
                    var f = file; f[f.count / 2] ^= 0x01; return f
                }(), [], "LZ4"
            ),
            ("bytes after its frame", file + [1, 2, 3], [], "after its LZ4 frame"),
            ("not an archive", nil, Array("{\"hello\":1}\n".utf8), "not a Vigil log archive"),
        ]
        // Whole LZ4 frames whose content is not a whole archive.
        var noTrailer = Array(lines.dropLast(2))
        noTrailer.append([])
        variants.append(("no trailer", nil, frame(noTrailer), "no trailer"))
        // An event line's own position, then something else.
        func keepingPosition(_ line: ArraySlice<UInt8>, _ rest: String) -> ArraySlice<UInt8> {
            line.prefix { $0 != UInt8(ascii: ",") } + Array(rest.utf8)
        }
        var garbled = lines
        garbled[600] = keepingPosition(lines[600], #","event_id":"oops"#)
        variants.append(("an event line not JSON", nil, frame(garbled), "could not be stored"))
        var missing = lines
        missing[700] = keepingPosition(lines[700], #","event_id":"x"}"#)
        variants.append(("an event without its fields", nil, frame(missing), "not whole events"))
        var repeated = lines
        repeated[800] = lines[799]
        variants.append(("a position twice", nil, frame(repeated), "repeats position"))
        var counted = lines
        counted[counted.count - 2] = ArraySlice(Array(#"{"end":"vigil-log","events":1199}"#.utf8))
        variants.append(("a wrong count", nil, frame(counted), "holds 1200 events"))

        let refusals = variants
        try await TestDatabase.withStore { target in
            let importer = LogImporter(store: target)
            for (name, bytes, content, expected) in refusals {
                if let bytes {
                    try Data(bytes).write(to: URL(fileURLWithPath: bad))
                } else {
                    let writer = try LZ4FrameWriter(path: bad)
                    try writer.write(content)
                    try writer.finish()
                }
                do {
                    _ = try await importer.importArchive(from: bad)
                    Issue.record("\(name): imported")
                } catch {
                    #expect("\(error)".contains(expected), "\(name): \(error)")
                }
                #expect(try await target.changeCount() == 0, "\(name): stored events")
                #expect(try await target.version(of: "camera-0") == 0, "\(name): stored a stream")
            }
            // Nothing half-imported: the good archive imports into the same store…
            let imported = try await importer.importArchive(from: path)
            #expect(imported.events == 1200)
            #expect(try await target.version(of: "camera-0") == 14 * 30)
            // …and only once.
            do {
                _ = try await importer.importArchive(from: path)
                Issue.record("imported into a store that holds events")
            } catch {
                #expect("\(error)".contains("already holds 1,000 or more events"), "\(error)")
            }
            #expect(try await target.changeCount() == 1200)
        }
    }
}

enum LZ4FrameTestsSupport {
    static func readAll(_ path: String) throws -> [UInt8] {
        let reader = try LZ4FrameReader(path: path)
        var content: [UInt8] = []
        while let chunk = try reader.next() { content += chunk }
        return content
    }
}
