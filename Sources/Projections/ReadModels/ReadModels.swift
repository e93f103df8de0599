/// The read models `vigil serve` keeps up to date, by name: the registry the server, the
/// projections commands and the tests read. Each read model's projection (how it is written)
/// and read model type (how it is read) live together under `ReadModels/<Name>/`.
public enum ReadModels {
    public static let all: [any Projection] = [
        CamerasProjection(), DetectionsProjection(), SecurityEventsProjection(), AnalyticsProjection(),
        ApiKeysProjection(), AuditProjection(), PipelineProjection(), ZonesProjection(), AlertRulesProjection(),
        AlertsProjection(), NotificationsProjection(), EntitiesProjection(),
    ]

    public static func named(_ name: String) -> (any Projection)? { all.first { $0.name == name } }
}
