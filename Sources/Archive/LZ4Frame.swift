import CLZ4
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What an LZ4 frame file could not be written or read as.
public struct LZ4FrameError: Error, Equatable, CustomStringConvertible {
    public var description: String

    init(_ description: String) { self.description = description }

    /// liblz4's name for the error code `code`, or nil when `code` is not an error.
    static func check(_ code: Int, _ doing: String) throws {
        guard LZ4F_isError(code) != 0 else { return }
        throw LZ4FrameError("\(doing): \(String(cString: LZ4F_getErrorName(code)))")
    }

    /// The file at `path`, opened with `flags`; else an error that says why ("No such file or
    /// directory", "Permission denied", "Is a directory"), where Foundation's said "(null)".
    static func open(_ path: String, _ flags: Int32, _ doing: String) throws -> FileHandle {
        let descriptor = Glibc.open(path, flags | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw LZ4FrameError("cannot \(doing) \(path): \(String(cString: strerror(errno)))")
        }
        var status = stat()
        if fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFDIR {
            close(descriptor)
            throw LZ4FrameError("cannot \(doing) \(path): \(String(cString: strerror(EISDIR)))")
        }
        return FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
    }
}

/// Writes one LZ4 frame (the format of the `lz4` command line tool) to a file, streaming: bytes
/// are compressed a block at a time, whatever the total. Each block carries a checksum of its
/// compressed bytes and the frame ends with a checksum of all the content, so a reader tells a
/// damaged or cut file from a whole one.
///
/// The frame is written to `path + ".partial"` and renamed to `path` by ``finish()``: a writer
/// that stops half-way (an error, a crash) never leaves a file that looks whole.
public final class LZ4FrameWriter {
    public let path: String
    private let partialPath: String
    private let file: FileHandle
    private var context: OpaquePointer?
    private var preferences = LZ4F_preferences_t()
    private var pending: [UInt8] = []
    private var output: [UInt8]
    private var finished = false
    /// Bytes given to ``write(_:)`` so far (uncompressed).
    public private(set) var contentBytes = 0
    /// Bytes written to the file so far.
    public private(set) var fileBytes = 0

    static let blockBytes = 64 * 1024

    public init(path: String) throws {
        self.path = path
        partialPath = path + ".partial"
        file = try LZ4FrameError.open(partialPath, O_WRONLY | O_CREAT | O_TRUNC, "create")
        preferences.frameInfo.blockSizeID = LZ4F_max64KB
        preferences.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled
        preferences.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled
        output = [UInt8](repeating: 0, count: max(LZ4F_compressBound(Self.blockBytes, &preferences), 64))
        pending.reserveCapacity(Self.blockBytes)
        var created: OpaquePointer?
        try LZ4FrameError.check(LZ4F_createCompressionContext(&created, UInt32(LZ4F_VERSION)), "lz4 context")
        context = created
        let written = output.withUnsafeMutableBytes {
            LZ4F_compressBegin(context, $0.baseAddress, $0.count, &preferences)
        }
        try LZ4FrameError.check(written, "lz4 frame header")
        try flushOutput(written)
    }

    deinit {
        LZ4F_freeCompressionContext(context)
        if !finished {
            try? file.close()
            try? FileManager.default.removeItem(atPath: partialPath)
        }
    }

    /// Appends `bytes` to the frame's content.
    public func write(_ bytes: some Collection<UInt8>) throws {
        precondition(!finished, "write after finish")
        pending.append(contentsOf: bytes)
        contentBytes += bytes.count
        if pending.count >= Self.blockBytes { try compressPending() }
    }

    /// Appends each of `lines` (without their newline) and a newline after it.
    public func write(lines: [String]) throws {
        for var line in lines {
            try line.withUTF8 { try write($0) }
            try write(CollectionOfOne(UInt8(ascii: "\n")))
        }
    }

    /// Ends the frame (its content checksum), syncs the file to disk and gives it its name.
    public func finish() throws {
        guard !finished else { return }
        try compressPending()
        let written = output.withUnsafeMutableBytes {
            LZ4F_compressEnd(context, $0.baseAddress, $0.count, nil)
        }
        try LZ4FrameError.check(written, "lz4 frame end")
        try flushOutput(written)
        try file.synchronize()
        try file.close()
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        try FileManager.default.moveItem(atPath: partialPath, toPath: path)
        finished = true
    }

    private func compressPending() throws {
        var start = 0
        while start < pending.count {
            let count = min(Self.blockBytes, pending.count - start)
            let written = pending.withUnsafeBytes { source in
                output.withUnsafeMutableBytes {
                    LZ4F_compressUpdate(
                        context, $0.baseAddress, $0.count, source.baseAddress! + start, count, nil)
                }
            }
            try LZ4FrameError.check(written, "lz4 compress")
            try flushOutput(written)
            start += count
        }
        pending.removeAll(keepingCapacity: true)
    }

    private func flushOutput(_ count: Int) throws {
        guard count > 0 else { return }
        try file.write(contentsOf: output[0..<count])
        fileBytes += count
    }
}

/// Reads one LZ4 frame from a file, streaming, a chunk of content at a time. It checks the
/// blocks' and the content's checksums, and refuses a file that ends before its frame does
/// (cut off) or goes on after it.
public final class LZ4FrameReader {
    public let path: String
    private let file: FileHandle
    private var context: OpaquePointer?
    private var input: [UInt8] = []
    private var inputStart = 0
    private var output: [UInt8]
    private var atEndOfFile = false
    private var frameEnded = false
    /// Bytes of the file read so far.
    public private(set) var fileBytesRead = 0
    /// The file's size in bytes.
    public let fileSize: Int

    static let readBytes = 64 * 1024

    public init(path: String) throws {
        self.path = path
        file = try LZ4FrameError.open(path, O_RDONLY, "read")
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        fileSize = (attributes?[.size] as? NSNumber)?.intValue ?? 0
        output = [UInt8](repeating: 0, count: 4 * Self.readBytes)
        var created: OpaquePointer?
        try LZ4FrameError.check(LZ4F_createDecompressionContext(&created, UInt32(LZ4F_VERSION)), "lz4 context")
        context = created
    }

    deinit {
        LZ4F_freeDecompressionContext(context)
        try? file.close()
    }

    /// The next chunk of the frame's content, or nil once the frame has ended (its checksum
    /// verified) and the file with it.
    public func next() throws -> [UInt8]? {
        while true {
            if inputStart == input.count {
                if frameEnded {
                    return nil
                }
                guard !atEndOfFile, let data = try file.read(upToCount: Self.readBytes), !data.isEmpty else {
                    atEndOfFile = true
                    throw LZ4FrameError(
                        fileBytesRead == 0
                            ? "\(path) is empty" : "\(path) is cut off: it ends before its LZ4 frame does")
                }
                input = [UInt8](data)
                inputStart = 0
                fileBytesRead += data.count
            }
            guard !frameEnded else {
                throw LZ4FrameError("\(path) goes on after its LZ4 frame has ended")
            }
            var produced = output.count
            var consumed = input.count - inputStart
            let hint = input.withUnsafeBytes { source in
                output.withUnsafeMutableBytes {
                    LZ4F_decompress(
                        context, $0.baseAddress, &produced, source.baseAddress! + inputStart, &consumed, nil)
                }
            }
            try LZ4FrameError.check(hint, "\(path) is not a whole LZ4 frame")
            inputStart += consumed
            if hint == 0 { frameEnded = true }
            if produced > 0 { return Array(output[0..<produced]) }
        }
    }
}

/// The lines of a stream of chunks (a line ends with `\n`, which is not part of it). The last
/// line must end with `\n` too: a file cut off in mid-line is refused, not read short.
public struct LineReader {
    private let chunks: () throws -> [UInt8]?
    private var buffer: [UInt8] = []
    private var start = 0
    /// Where the search for the next newline goes on (the bytes before it have none).
    private var scanned = 0
    private var ended = false

    public init(_ chunks: @escaping () throws -> [UInt8]?) { self.chunks = chunks }

    /// The next line, or nil at the end.
    public mutating func next() throws -> ArraySlice<UInt8>? {
        while true {
            if let newline = buffer[scanned...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[start..<newline]
                start = newline + 1
                scanned = start
                return line
            }
            if ended {
                guard start == buffer.count else { throw LZ4FrameError("the last line does not end") }
                return nil
            }
            buffer.removeSubrange(0..<start)
            start = 0
            scanned = buffer.count
            if let chunk = try chunks() { buffer.append(contentsOf: chunk) } else { ended = true }
        }
    }
}
