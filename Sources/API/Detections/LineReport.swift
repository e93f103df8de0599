import Hummingbird

/// The per-line outcome of an NDJSON upload.
struct LineReport {
    /// Per-line errors reported in full; the rest are counted.
    static let reportedErrors = 100

    var accepted = 0
    var alreadyStored = 0
    var rejected = 0
    var errors: [(line: Int, issues: [ValidationError.Issue])] = []

    mutating func reject(_ line: Int, _ issues: [ValidationError.Issue]) {
        rejected += 1
        if errors.count < Self.reportedErrors { errors.append((line, issues)) }
    }

    /// Lines that held a detection, good or bad (blank lines don't count).
    var lines: Int { accepted + alreadyStored + rejected }

    func response() -> Response {
        var writer = JSONWriter()
        writer.object { object in
            object.field("accepted", accepted)
            object.field("already_stored", alreadyStored)
            object.field("rejected", rejected)
            object.array("errors") { array in
                for error in errors.sorted(by: { $0.line < $1.line }) {
                    array.object { item in
                        item.field("line", error.line)
                        item.array("detail") { detail in
                            for issue in error.issues {
                                detail.object { issue.write(to: &$0) }
                            }
                        }
                    }
                }
            }
            object.field("errors_truncated", errors.count < rejected)
        }
        return writer.response(status: .ok)
    }
}
