import EventStore
import Foundation
import ServiceLifecycle
import Testing
import VigilTesting

@Suite("Group-commit appender")
struct GroupCommitTests {
    /// Runs an appender service for the duration of `body`.
    static func withAppender<Value: Sendable>(
        _ store: EventStore,
        options: GroupCommitAppender.Options = .init(),
        _ body: @Sendable (GroupCommitAppender) async throws -> Value
    ) async throws -> Value {
        let appender = GroupCommitAppender(store: store, options: options)
        return try await withThrowingTaskGroup(of: Value?.self) { group in
            group.addTask {
                try await appender.run()
                return nil
            }
            defer { group.cancelAll() }
            return try await body(appender)
        }
    }

    @Test("concurrent callers share transactions and each gets its own answer")
    func batching() async throws {
        try await TestDatabase.withStore { store in
            try await Self.withAppender(store, options: .init(maxBatch: 64, flushers: 2)) { appender in
                let results = try await withThrowingTaskGroup(of: AppendResult.self) { group in
                    for index in 0..<400 {
                        group.addTask {
                            try await appender.append(to: "camera-\(index % 10)", events: [detection(sequence: index)])
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(results.count == 400)
                #expect(Set(results.flatMap(\.checkpoints)).count == 400)
                for camera in 0..<10 {
                    let versions = results.filter { $0.stream == "camera-\(camera)" }.map(\.version).sorted()
                    #expect(versions == Array(1...40))
                }
                let statistics = appender.statistics
                #expect(statistics.requests == 400)
                #expect(statistics.transactions < 400, "400 concurrent callers should share transactions")
                // Two flushers writing the same streams in one statement each: a stream's versions
                // still follow the log's order (the younger-writer check, ARCHITECTURE).
                let log = try await store.readAll()
                #expect(log.count == 400)
                for camera in 0..<10 {
                    #expect(log.filter { $0.stream == "camera-\(camera)" }.map(\.version) == Array(1...40))
                }
                #expect(store.appendPaths.oneStatement > 0)
            }
        }
    }

    @Test("a caller cancelled while its request is queued gets CancellationError at once, and nothing is written")
    func cancelledWhileQueued() async throws {
        try await TestDatabase.withStore { store in
            try await Self.withAppender(store, options: .init(maxBatch: 1, flushers: 1)) { appender in
                // A transaction holds camera-1, so the one flusher's transaction for camera-1
                // waits on it, and the request for camera-2 stays queued behind it.
                let (held, heldSignal) = AsyncStream.makeStream(of: Void.self)
                let (release, releaseSignal) = AsyncStream.makeStream(of: Void.self)
                let holder = Task {
                    try await store.transaction { transaction in
                        try await transaction.append(to: "camera-1", events: [detection(sequence: 0)])
                        heldSignal.yield()
                        for await _ in release { break }
                    }
                }
                for await _ in held { break }
                let blocked = Task { try await appender.append(to: "camera-1", events: [detection(sequence: 1)]) }
                // Give the flusher time to take camera-1; camera-2 then waits in the queue.
                try await Task.sleep(for: .milliseconds(200))
                let queued = Task { try await appender.append(to: "camera-2", events: [detection(sequence: 2)]) }
                try await Task.sleep(for: .milliseconds(200))
                queued.cancel()
                let outcome = await withDeadline(.seconds(30)) { try await queued.value }
                switch outcome {
                case nil: Issue.record("the cancelled caller was still waiting after 30 s")
                case .success: Issue.record("a request cancelled in the queue was written")
                case .failure(let error): #expect(error is CancellationError, "\(error)")
                }
                releaseSignal.finish()
                try await holder.value
                let written = try await blocked.value
                #expect(written.stream == "camera-1" && written.version == 2)
                #expect(try await store.readStream("camera-2") == nil, "the withdrawn request must not be written")
            }
        }
    }

    @Test("a refused request in a batch does not fail its neighbours, and a repeated request writes once")
    func isolation() async throws {
        try await TestDatabase.withStore { store in
            try await store.append(to: "config-system", events: [detection()])
            try await Self.withAppender(store, options: .init(maxBatch: 100, linger: .milliseconds(20), flushers: 1)) {
                appender in
                let repeated = [detection()]
                async let good = appender.append(to: "camera-1", events: [detection()])
                async let conflicting = appender.append(to: "config-system", events: [detection()], expected: .noStream)
                async let first = appender.append(to: "camera-2", events: repeated)
                async let second = appender.append(to: "camera-2", events: repeated)
                #expect(try await good.version == 1)
                do {
                    _ = try await conflicting
                    Issue.record("an append expecting no stream to an existing stream must be refused")
                } catch {
                    #expect(
                        error as? AppendError
                            == .wrongExpectedVersion(stream: "config-system", expected: .noStream, current: 1)
                    )
                }
                let (one, two) = try await (first, second)
                #expect(one.checkpoints == two.checkpoints)
                #expect(one.wasAlreadyStored != two.wasAlreadyStored)
                #expect(try await store.readAll().count == 3)
            }
        }
    }
}
