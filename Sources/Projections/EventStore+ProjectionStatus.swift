import EventStore

extension EventStore {
    /// The status of every registered projection (see ``ProjectionStatus``).
    public func projectionStatuses() async throws -> [ProjectionStatus] {
        try await projectionStatuses(leaseKey: ProjectionRunner.leaseKey)
    }
}
