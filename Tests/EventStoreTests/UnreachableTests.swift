import EventStore
import Testing
import VigilTesting

/// One-off commands (`migrate`, `export`, `projections`, `serve`'s first check) say at once
/// why PostgreSQL can't be reached. Their pool used to retry for about a minute and then report
/// only that its circuit breaker had tripped.
@Suite struct UnreachableTests {
    @Test func aMissingDatabaseIsNamedAtOnce() async throws {
        let settings = try TestDatabase.settings().with(database: "vigil_test_no_such_database")
        let error = await reachError(settings)
        #expect(error?.reason.contains("does not exist") == true, "\(String(describing: error))")
        #expect(error?.description.hasPrefix("cannot reach PostgreSQL at ") == true)
        #expect(error?.database == "vigil_test_no_such_database")
    }

    /// Nothing listens on port 1.
    @Test func aClosedPortIsNamedAtOnce() async throws {
        var settings = try TestDatabase.settings()
        settings.port = 1
        let error = await reachError(settings)
        #expect(error?.reason.contains("refused") == true, "\(String(describing: error))")
        #expect(error?.port == 1)
    }

    /// The error `withRunningClient` threw, after checking that it came well before the pool's
    /// circuit breaker (about a minute) and that the body never ran.
    private func reachError(_ settings: PostgresSettings) async -> DatabaseUnreachable? {
        let clock = ContinuousClock()
        let start = clock.now
        do {
            try await settings.withRunningClient(logger: TestDatabase.logger) { _ in
                Issue.record("the body ran without a database")
            }
            Issue.record("no error")
            return nil
        } catch let error as DatabaseUnreachable {
            // Generous for a loaded machine; the breaker took 67 s.
            #expect(clock.now - start < .seconds(30))
            return error
        } catch {
            Issue.record("not DatabaseUnreachable: \(String(reflecting: error))")
            return nil
        }
    }
}
