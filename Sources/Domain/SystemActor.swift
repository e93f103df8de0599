/// The names Vigil acts under itself, as events' `actor`: one list, so that no issued API key
/// can take one of them (``ApiKey/reservedNames``) and pass its actions off as Vigil's own.
public enum SystemActor {
    /// The alert engine raising alerts from analyzed events.
    public static let alertEngine = "alert-engine"
    /// The batch aggregator opening and closing batches of detections.
    public static let batchAggregator = "batch-aggregator"
    /// The webhook deliverer recording each delivery's outcome.
    public static let webhookDeliverer = "webhook-deliverer"
    /// The built-in heuristic analyzer (its default name).
    public static let heuristicAnalyzer = "heuristic-analyzer"
    /// Demo and synthetic histories (`tools/run`, the benchmarks' scratch databases).
    public static let synthetic = "synthetic"
    /// The benchmarks' own writes.
    public static let bench = "bench"

    public static let all: Set<String> = [
        alertEngine, batchAggregator, webhookDeliverer, heuristicAnalyzer, synthetic, bench,
    ]
}
