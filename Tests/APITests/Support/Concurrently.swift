import HTTPTypes

/// The statuses of `count` copies of `request` sent at once (in the order they were answered):
/// how the race tests make a burst of identical requests.
func statusesOfConcurrent(
    _ count: Int, _ request: @escaping @Sendable () async throws -> HTTPResponse.Status
) async throws -> [Int] {
    try await withThrowingTaskGroup(of: Int.self) { group in
        for _ in 0..<count { group.addTask { try await request().code } }
        return try await group.reduce(into: [Int]()) { $0.append($1) }
    }
}
