import Projections

extension SecurityEventsReadModel {
    /// 404 unless `GET /api/events/{id}` shows the event (not a removed camera's): the one rule
    /// every route that reads or changes an event by id applies first.
    func requireVisible(_ id: Int64) async throws {
        guard try await isVisible(id) else { throw APIError.notFound("Event \(id) not found") }
    }
}
