import Testing

@testable import EventStore

/// ``ChangeSignal``: a wait ends on a change, on its timeout or on cancellation, once; and a
/// wait that ends early leaves no timeout behind (a server's waits on the tail come by the
/// thousand under load).
@Suite struct ChangeSignalTests {
    @Test("a wait ends at the change, and its timeout goes with it")
    func changeEndsWaits() async throws {
        let signal = ChangeSignal()
        let seen = signal.generation
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<100 {
                group.addTask { await signal.wait(after: seen, timeout: .seconds(600)) }
            }
            while signal.pending.timers < 100 { try await Task.sleep(for: .milliseconds(5)) }
            #expect(signal.pending.waiters == 100)
            signal.bump()
            try await group.waitForAll()
        }
        #expect(signal.pending.waiters == 0 && signal.pending.timers == 0)
    }

    @Test("a wait ends at its timeout without a change")
    func timeoutEndsWait() async {
        let signal = ChangeSignal()
        let clock = ContinuousClock()
        let began = clock.now
        await signal.wait(after: signal.generation, timeout: .milliseconds(50))
        #expect(clock.now - began >= .milliseconds(50))
        #expect(signal.pending.waiters == 0 && signal.pending.timers == 0)
    }

    @Test("a wait for a generation already gone returns at once, with no timeout scheduled")
    func staleGeneration() async {
        let signal = ChangeSignal()
        let seen = signal.generation
        signal.bump()
        await signal.wait(after: seen, timeout: .seconds(600))
        #expect(signal.pending.waiters == 0 && signal.pending.timers == 0)
    }

    @Test("a cancelled wait ends, and its timeout goes with it")
    func cancellationEndsWait() async throws {
        let signal = ChangeSignal()
        let waiting = Task { await signal.wait(after: signal.generation, timeout: .seconds(600)) }
        while signal.pending.waiters < 1 { try await Task.sleep(for: .milliseconds(5)) }
        waiting.cancel()
        await waiting.value
        #expect(signal.pending.waiters == 0 && signal.pending.timers == 0)
    }
}
