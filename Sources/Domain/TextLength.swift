/// What "N characters" means wherever Vigil takes or keeps text: Unicode scalars (code points),
/// as the seeds' Python counts them (`len(s)`). Swift's `String.count` counts grapheme clusters
/// instead, and one cluster can hold any number of scalars ("p" and 3,000 combining marks is
/// one), so a limit in clusters bounds nothing: such a value once passed a 50-character limit
/// at 6 KB and then stopped three read models at their indexes (PostgreSQL's B-tree keys hold
/// at most 2,704 bytes). In scalars, a value of N characters is at most 4·N bytes of UTF-8.
extension String {
    /// Its length in Unicode scalars: what the API's length limits count.
    public var characterCount: Int { unicodeScalars.count }

    /// At most its first `count` Unicode scalars (never more than 4·`count` bytes of UTF-8).
    public func prefix(characters count: Int) -> String {
        var scalars = String.UnicodeScalarView()
        for scalar in unicodeScalars.prefix(count) { scalars.append(scalar) }
        return String(scalars)
    }
}
