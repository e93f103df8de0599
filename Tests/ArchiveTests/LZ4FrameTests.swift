import Archive
import Foundation
import Testing

/// The LZ4 frame stream: what it writes reads back byte for byte, and a damaged, cut or
/// lengthened file is refused, never read short.
@Suite("LZ4 frames")
struct LZ4FrameTests {
    /// Lines of varied, partly repetitive text: several 64 KB blocks' worth.
    static func content(lines: Int) -> [UInt8] {
        var text = ""
        for n in 0..<lines {
            text +=
                #"{"n":\#(n),"camera":"cam-\#(n % 7)","score":\#((n * 37) % 101),"noise":"\#(String(n * 7919, radix: 36))"}"#
            text += "\n"
        }
        return Array(text.utf8)
    }

    static func path(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("vigil-lz4-\(UUID().uuidString)-\(name)").path
    }

    /// Writes `content` in uneven pieces, returns the file's bytes.
    static func write(_ content: [UInt8], to path: String) throws -> [UInt8] {
        let writer = try LZ4FrameWriter(path: path)
        var start = 0
        var piece = 1
        while start < content.count {
            let end = min(content.count, start + piece)
            try writer.write(content[start..<end])
            start = end
            piece = piece * 3 + 1
        }
        #expect(!FileManager.default.fileExists(atPath: path), "the file has its name only once it is whole")
        try writer.finish()
        #expect(writer.contentBytes == content.count)
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static func readAll(_ path: String) throws -> [UInt8] {
        let reader = try LZ4FrameReader(path: path)
        var content: [UInt8] = []
        while let chunk = try reader.next() { content += chunk }
        return content
    }

    @Test("Written in pieces, read back in chunks: the same bytes, compressed, as lines")
    func roundTrip() throws {
        let path = Self.path("round-trip.lz4")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let content = Self.content(lines: 20_000)
        let file = try Self.write(content, to: path)
        #expect(content.count > 4 * 64 * 1024)
        #expect(file.count < content.count / 2)
        #expect(try Self.readAll(path) == content)

        let reader = try LZ4FrameReader(path: path)
        var lines = LineReader { try reader.next() }
        var count = 0
        while let line = try lines.next() {
            #expect(line.starts(with: Array(#"{"n":\#(count),"#.utf8)))
            count += 1
        }
        #expect(count == 20_000)
    }

    @Test("An empty frame is a whole file with no content")
    func empty() throws {
        let path = Self.path("empty.lz4")
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try Self.write([], to: path)
        #expect(try Self.readAll(path).isEmpty)
    }

    @Test("A file cut anywhere, with a byte changed, or with bytes after its frame is refused")
    func damaged() throws {
        let path = Self.path("whole.lz4")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try Self.write(Self.content(lines: 5_000), to: path)
        let damagedPath = Self.path("damaged.lz4")
        defer { try? FileManager.default.removeItem(atPath: damagedPath) }

        var variants: [(String, [UInt8])] = [
            ("empty", []),
            ("not lz4", Array("just some text\n".utf8)),
            ("bytes after the frame", file + [0x42]),
        ]
        for cut in [4, 7, file.count / 3, file.count / 2, file.count - 5, file.count - 1] {
            variants.append(("cut at \(cut) of \(file.count)", Array(file[0..<cut])))
        }
        for offset in [5, 20, file.count / 4, file.count / 2, file.count - 2] {
            var changed = file
            changed[offset] ^= 0x10
            variants.append(("byte \(offset) changed", changed))
        }
        for (name, bytes) in variants {
            try Data(bytes).write(to: URL(fileURLWithPath: damagedPath))
            #expect(throws: LZ4FrameError.self, "\(name)") { _ = try Self.readAll(damagedPath) }
        }
    }

    @Test("A last line without its newline is refused")
    func unendedLine() throws {
        var chunks: [[UInt8]] = [Array("one\ntw".utf8), Array("o\nthree".utf8)]
        var lines = LineReader { chunks.isEmpty ? nil : chunks.removeFirst() }
        #expect(try lines.next().map { String(decoding: $0, as: UTF8.self) } == "one")
        #expect(try lines.next().map { String(decoding: $0, as: UTF8.self) } == "two")
        #expect(throws: LZ4FrameError.self) { _ = try lines.next() }
    }

    /// The reason comes from the system: Foundation's errors said "(null)" for a directory and
    /// nothing at all for a missing folder.
    @Test("A file that can't be opened is refused with the reason")
    func unopenable() throws {
        let folder = Self.path("folder")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(refusal { _ = try LZ4FrameReader(path: folder) } == "cannot read \(folder): Is a directory")
        #expect(
            refusal { _ = try LZ4FrameReader(path: folder + "/none") }
                == "cannot read \(folder)/none: No such file or directory")
        #expect(
            refusal { _ = try LZ4FrameWriter(path: folder + "/none/x.lz4") }
                == "cannot create \(folder)/none/x.lz4.partial: No such file or directory")
    }

    private func refusal(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch {
            return (error as? LZ4FrameError)?.description ?? String(reflecting: error)
        }
    }
}
