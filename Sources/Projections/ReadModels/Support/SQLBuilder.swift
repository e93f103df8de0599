import PostgresNIO

/// SQL with positional binds, built up piece by piece: the read models' filters vary per
/// request. Values always become bind parameters; only SQL text written in this module (column
/// names, fixed fragments, inlined integers) goes into the statement.
///
/// ``query(_:)`` is the one place read-side SQL is turned into a statement from text.
public struct SQLBuilder: Sendable {
    private(set) var binds = PostgresBindings()
    private(set) var conditions: [String] = []

    public init() {}

    /// Binds `value` and returns its placeholder (`$n`).
    public mutating func bind(_ value: some PostgresDynamicTypeEncodable) -> String {
        binds.append(value)
        return "$\(binds.count)"
    }

    public mutating func condition(_ sql: String) { conditions.append(sql) }

    /// `AND`-joined conditions, or `true`.
    public var conjunction: String { conditions.isEmpty ? "true" : conditions.joined(separator: " AND ") }

    /// Whether no condition was added.
    public var isUnfiltered: Bool { conditions.isEmpty }

    public func query(_ sql: String) -> PostgresQuery { PostgresQuery(unsafeSQL: sql, binds: binds) }
}
