import API
import EventStore
import HummingbirdTesting
import Testing

/// What a test under ``ScratchApp`` works with: the store of its own scratch database and a
/// client of the whole application running on it.
struct TestApp: Sendable {
    let store: EventStore
    let client: any TestClientProtocol

    @TaskLocal static var scoped: TestApp?

    /// The app of the running test; the test (or its suite) needs the `.scratchApp` trait.
    static var current: TestApp {
        get throws { try #require(scoped, "this test needs the .scratchApp trait") }
    }
}

/// A suite or test trait: every test it covers runs with a fresh, migrated database and the
/// real application (router, middleware, runners, workers) on it, dropped afterwards.
///
/// On a suite it is recursive, so each test gets its own database: tests of a suite run in
/// parallel and must not see each other's events. The test reads them from ``TestApp/current``.
struct ScratchApp: SuiteTrait, TestTrait, TestScoping {
    let configure: @Sendable (inout ServerConfiguration) -> Void

    var isRecursive: Bool { true }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        try await withApp(configure: configure) { store, client in
            try await TestApp.$scoped.withValue(TestApp(store: store, client: client)) { try await function() }
        }
    }
}

extension Trait where Self == ScratchApp {
    /// A scratch database and the application on it, set up by `configure`.
    static func scratchApp(configure: @escaping @Sendable (inout ServerConfiguration) -> Void = { _ in }) -> Self {
        ScratchApp(configure: configure)
    }

    static var scratchApp: Self { ScratchApp(configure: { _ in }) }
}
