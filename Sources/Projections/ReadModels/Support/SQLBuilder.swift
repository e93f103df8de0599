import Foundation
import PostgresNIO

/// SQL with positional binds, built up piece by piece: the read models' filters vary per
/// request. Values always become bind parameters; only SQL text written in this module (column
/// names, fixed fragments, inlined integers) goes into the statement.
///
/// ``query(_:)`` is the one place read-side SQL is turned into a statement from text.
public struct SQLBuilder: Sendable {
    private(set) var binds = PostgresBindings()
    private(set) var conditions: [String] = []
    /// Each bound value as an SQL literal (nil: a type ``inlined(_:)`` can't write).
    private var literals: [String?] = []

    public init() {}

    /// Binds `value` and returns its placeholder (`$n`).
    public mutating func bind(_ value: some PostgresDynamicTypeEncodable) -> String {
        binds.append(value)
        literals.append(Self.literal(value))
        return "$\(binds.count)"
    }

    /// `sql` with each placeholder replaced by its value written as a literal: the statement as
    /// a tool that takes SQL text runs it (a benchmark's `pgbench` script), never what the
    /// server sends. Nil when a value has no literal form here.
    public func inlined(_ sql: String) -> String? {
        var text = ""
        var rest = Substring(sql)
        var quoted = false  // inside '…' (a doubled '' toggles twice)
        while let next = rest.firstIndex(where: { $0 == "$" || $0 == "'" }) {
            text += rest[...next]
            rest = rest[rest.index(after: next)...]
            if rest.isEmpty || sql[next] == "'" {
                if sql[next] == "'" { quoted.toggle() }
                continue
            }
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !quoted, let number = Int(digits), number >= 1, number <= literals.count else { continue }
            guard let literal = literals[number - 1] else { return nil }
            text.removeLast()
            text += literal
            rest = rest[digits.endIndex...]
        }
        return text + rest
    }

    private static func literal(_ value: some PostgresDynamicTypeEncodable) -> String? {
        switch value {
        case let text as String: "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
        case let number as Int: String(number)
        case let number as Int64: String(number)
        case let number as Int32: String(number)
        case let number as Double: String(number)
        case let flag as Bool: flag ? "true" : "false"
        case let date as Date:
            "'" + date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)) + "'"
        default: nil
        }
    }

    public mutating func condition(_ sql: String) { conditions.append(sql) }

    /// `AND`-joined conditions, or `true`.
    public var conjunction: String { conditions.isEmpty ? "true" : conditions.joined(separator: " AND ") }

    /// Whether no condition was added.
    public var isUnfiltered: Bool { conditions.isEmpty }

    public func query(_ sql: String) -> PostgresQuery { PostgresQuery(unsafeSQL: sql, binds: binds) }
}
