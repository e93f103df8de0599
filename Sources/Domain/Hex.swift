/// Lower-case hexadecimal, two digits a byte: what `String(format: "%02x")` per byte gives,
/// without a format string parsed for every byte (a digest is rendered on every keyed POST).
public func lowercaseHex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
    let digits = Array("0123456789abcdef".utf8)
    var utf8: [UInt8] = []
    utf8.reserveCapacity(bytes.underestimatedCount * 2)
    for byte in bytes {
        utf8.append(digits[Int(byte >> 4)])
        utf8.append(digits[Int(byte & 0x0f)])
    }
    return String(decoding: utf8, as: UTF8.self)
}
