import Foundation

/// Splits a SQL file into statements at top-level semicolons, respecting quotes, quoted
/// identifiers, dollar-quoted bodies and comments (the extended query protocol takes one
/// statement at a time).
public enum SQLScript {
    public static func statements(in script: String) -> [String] {
        let chars = Array(script.unicodeScalars)
        var statements: [String] = []
        var current = String.UnicodeScalarView()
        var index = 0

        func flush() {
            let statement = String(current).trimmingCharacters(in: .whitespacesAndNewlines)
            if !statement.isEmpty && !isOnlyComments(statement) { statements.append(statement) }
            current = String.UnicodeScalarView()
        }

        while index < chars.count {
            let char = chars[index]
            let nextChar = index + 1 < chars.count ? chars[index + 1] : nil
            switch char {
            case "-" where nextChar == "-":
                while index < chars.count && chars[index] != "\n" {
                    current.append(chars[index])
                    index += 1
                }
                continue
            case "/" where nextChar == "*":
                let end = find("*/", in: chars, from: index + 2) ?? chars.count
                current.append(contentsOf: chars[index..<min(end + 2, chars.count)])
                index = end + 2
                continue
            case "'", "\"":
                var end = index + 1
                while end < chars.count {
                    if chars[end] == char {
                        if end + 1 < chars.count && chars[end + 1] == char {
                            end += 2
                            continue
                        }
                        break
                    }
                    end += 1
                }
                current.append(contentsOf: chars[index..<min(end + 1, chars.count)])
                index = end + 1
                continue
            case "$":
                if let tagEnd = dollarTagEnd(chars, from: index) {
                    let tag = Array(chars[index...tagEnd])
                    let close = find(String(String.UnicodeScalarView(tag)), in: chars, from: tagEnd + 1) ?? chars.count
                    let end = min(close + tag.count, chars.count)
                    current.append(contentsOf: chars[index..<end])
                    index = end
                    continue
                }
            case ";":
                flush()
                index += 1
                continue
            default:
                break
            }
            current.append(char)
            index += 1
        }
        flush()
        return statements
    }

    /// `$tag$` or `$$` starting at `start`: the index of its closing `$`.
    private static func dollarTagEnd(_ chars: [Unicode.Scalar], from start: Int) -> Int? {
        var index = start + 1
        while index < chars.count {
            let char = chars[index]
            if char == "$" { return index }
            guard char == "_" || char.properties.isAlphabetic || (index > start + 1 && ("0"..."9").contains(char))
            else { return nil }
            index += 1
        }
        return nil
    }

    private static func find(_ needle: String, in chars: [Unicode.Scalar], from start: Int) -> Int? {
        let pattern = Array(needle.unicodeScalars)
        guard !pattern.isEmpty, start <= chars.count - pattern.count else { return nil }
        for index in start...(chars.count - pattern.count) where chars[index] == pattern[0] {
            if Array(chars[index..<index + pattern.count]) == pattern { return index }
        }
        return nil
    }

    private static func isOnlyComments(_ statement: String) -> Bool {
        statement.split(separator: "\n").allSatisfy {
            let line = $0.trimmingCharacters(in: .whitespaces)
            return line.isEmpty || line.hasPrefix("--")
        }
    }
}
