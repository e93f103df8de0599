import EventStore
import Foundation
import Testing

/// Every table of every projection gets a view of its name in `public` (``Generations``'s
/// publish): two projections with a table of one name would take that view from each other,
/// and creating both at a server's start raced (`pg_type_typname_nsp_index`, seen once, in
/// session 47, when three read models each had a `removed_cameras`).
@Suite struct TableNameTests {
    @Test("no two projections create a table of the same name")
    func tableNamesAreUnique() throws {
        let root = Migrator.schemasDirectory().deletingLastPathComponent().appendingPathComponent("projections")
        let pattern = try Regex(#"(?i)CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([a-z_][a-z0-9_]*)"#)
        var owners: [String: Set<String>] = [:]
        let projections = try FileManager.default.contentsOfDirectory(atPath: root.path)
        for projection in projections {
            let folder = root.appendingPathComponent(projection)
            for file in try FileManager.default.contentsOfDirectory(atPath: folder.path) where file.hasSuffix(".sql") {
                let script = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
                for match in script.matches(of: pattern) {
                    if let name = match.output[1].substring {
                        owners[String(name).lowercased(), default: []].insert(projection)
                    }
                }
            }
        }
        #expect(owners.count > 20, "the scripts were read: \(owners.keys.sorted())")
        let shared = owners.filter { $0.value.count > 1 }
        #expect(shared.isEmpty, "tables named alike in several projections: \(shared)")
    }
}
