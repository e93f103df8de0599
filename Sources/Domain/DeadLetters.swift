import Foundation

/// Jobs an operator moved from a dead-letter list back to their queue
/// (`POST /api/dlq/requeue…/{queue_name}`).
public struct DeadLettersRequeued: DomainEvent {
    public static let type = "DeadLettersRequeued"
    /// The dead-letter list, by its API name (`dlq:analysis_queue`).
    public var queue: String
    /// The queue the jobs went back to (`analysis_queue`).
    public var target: String
    public var count: Int
    /// The ids of the requeued jobs that have one (at most ``maxJobIDs``).
    public var jobIds: [String]

    public static let maxJobIDs = 100

    public init(queue: String, target: String, count: Int, jobIds: [String]) {
        self.queue = queue
        self.target = target
        self.count = count
        self.jobIds = Array(jobIds.prefix(Self.maxJobIDs))
    }

    public var stream: String { DeadLetters.stream(queue) }

    enum CodingKeys: String, CodingKey {
        case queue, target, count
        case jobIds = "job_ids"
    }
}

/// An operator emptied a dead-letter list (`DELETE /api/dlq/{queue_name}`).
public struct DeadLettersCleared: DomainEvent {
    public static let type = "DeadLettersCleared"
    public var queue: String
    public var count: Int

    public init(queue: String, count: Int) {
        self.queue = queue
        self.count = count
    }

    public var stream: String { DeadLetters.stream(queue) }
}

public enum DeadLetters {
    /// The stream of one dead-letter list's operator actions.
    public static func stream(_ queue: String) -> String { "dlq-" + queue }
}
