/// Severity: how a risk score (0…100) maps to a level, and how that mapping changes.
///
/// This file is the one place the rule is written. Levels are never stored: every level the
/// API shows — an event's `risk_level`, the list's `risk_level` filter, stats, export,
/// risk-history, the severity preview — is derived from the stored score under the thresholds
/// in force when it is read, in Swift by ``SeverityThresholds/level(_:)`` and in SQL by the text
/// ``SeverityThresholds/levelSQL(score:)`` and ``SeverityThresholds/conditionSQL(score:level:)``
/// generate from the same bounds. A threshold change is a ``SeverityThresholdsChanged`` in the
/// `config-system` stream; `SystemSettingsReader` folds it, and the next read re-classifies
/// all of history without a rebuild.

/// The four risk levels, lowest first.
public enum RiskLevel: String, Codable, Sendable, CaseIterable {
    case low, medium, high, critical
}

/// Upper bounds (inclusive) of the low, medium and high levels; above `highMax` is critical.
public struct SeverityThresholds: Sendable, Hashable, Codable {
    public var lowMax: Int
    public var mediumMax: Int
    public var highMax: Int

    public static let defaults = SeverityThresholds(lowMax: 29, mediumMax: 59, highMax: 84)
    /// Every score an analysis can give.
    public static let scoreRange = 0...100

    public init(lowMax: Int, mediumMax: Int, highMax: Int) {
        self.lowMax = lowMax
        self.mediumMax = mediumMax
        self.highMax = highMax
    }

    /// `0 <= low_max < medium_max < high_max <= 100`.
    public var isValid: Bool { 0 <= lowMax && lowMax < mediumMax && mediumMax < highMax && highMax <= 100 }

    /// Each level but the top one with its inclusive upper bound, lowest first; a score above
    /// every bound is `critical`. The Swift and the SQL forms below are all read from this.
    public var upperBounds: [(level: RiskLevel, max: Int)] {
        [(.low, lowMax), (.medium, mediumMax), (.high, highMax)]
    }

    public func level(_ score: Int) -> RiskLevel {
        upperBounds.first { score <= $0.max }?.level ?? .critical
    }

    /// The scores (inclusive) that map to `level` under valid thresholds (nil: none, which
    /// happens for `critical` when `high_max` is 100).
    public func scores(of level: RiskLevel) -> ClosedRange<Int>? {
        let bounds = upperBounds
        let index = bounds.firstIndex { $0.level == level } ?? bounds.count
        let lower = index == 0 ? Self.scoreRange.lowerBound : bounds[index - 1].max + 1
        let upper = index < bounds.count ? bounds[index].max : Self.scoreRange.upperBound
        return lower <= upper ? lower...upper : nil
    }

    /// SQL for the level (`'low'` … `'critical'`, NULL for a NULL score) of the integer
    /// expression `score`. The thresholds are inlined: they are integers, so the text is safe to
    /// build, and the statement needs no binds for them.
    public func levelSQL(score: String) -> String {
        let cases = upperBounds.map { "WHEN \(score) <= \($0.max) THEN '\($0.level.rawValue)'" }
        return "CASE WHEN \(score) IS NULL THEN NULL \(cases.joined(separator: " ")) "
            + "ELSE '\(RiskLevel.critical.rawValue)' END"
    }

    /// SQL that is true where the integer expression `score` has `level`, for exactly the
    /// scores ``level(_:)`` and ``levelSQL(score:)`` give it: a range on the score, so an index
    /// on the score serves it.
    public func conditionSQL(score: String, level: RiskLevel) -> String {
        let bounds = upperBounds
        let index = bounds.firstIndex { $0.level == level } ?? bounds.count
        var conditions: [String] = []
        if index > 0 { conditions.append("\(score) > \(bounds[index - 1].max)") }
        if index < bounds.count { conditions.append("\(score) <= \(bounds[index].max)") }
        return conditions.joined(separator: " AND ")
    }

    enum CodingKeys: String, CodingKey {
        case lowMax = "low_max"
        case mediumMax = "medium_max"
        case highMax = "high_max"
    }
}

/// Someone changed the severity thresholds (`PUT /api/system/severity`); `previous` are the
/// ones replaced. Every level shown from then on, history included, follows the new ones.
/// Stream `config-system`.
public struct SeverityThresholdsChanged: DomainEvent {
    public static let type = "SeverityThresholdsChanged"
    public var lowMax: Int
    public var mediumMax: Int
    public var highMax: Int
    public var previous: SeverityThresholds

    public init(_ thresholds: SeverityThresholds, previous: SeverityThresholds) {
        lowMax = thresholds.lowMax
        mediumMax = thresholds.mediumMax
        highMax = thresholds.highMax
        self.previous = previous
    }

    public var thresholds: SeverityThresholds {
        SeverityThresholds(lowMax: lowMax, mediumMax: mediumMax, highMax: highMax)
    }

    public var stream: String { SystemSettings.stream }

    enum CodingKeys: String, CodingKey {
        case previous
        case lowMax = "low_max"
        case mediumMax = "medium_max"
        case highMax = "high_max"
    }
}
