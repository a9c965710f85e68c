import AgentCore

#if canImport(Glibc)
import Glibc
#endif

/// The board's kernel files on disk, below a system root (`/` on a board, `board/simulated/sysroot` in a demo).
public struct DiskBoardFiles: BoardFiles {
    /// The system root, without a trailing slash ("" for `/`).
    public let root: String

    public init(root: String) {
        var trimmed = root
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.root = trimmed == "/" ? "" : trimmed
    }

    public func displayPath(_ path: String) -> String {
        let relative = path.hasPrefix("/") ? String(path.dropFirst()) : path
        return "\(self.root)/\(relative)"
    }

    public func readText(_ path: String) throws(BoardFileError) -> String {
        let full = self.displayPath(path)
        let fd = open(full, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.error(errno, full) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Self.error(errno, full)
            }
            if n == 0 { break }
            bytes += chunk[0..<n]
            // sysfs attributes fit in one page; a runaway file is not a sensor.
            if bytes.count > 1 << 20 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func list(_ directory: String) throws(BoardFileError) -> [String] {
        let full = self.displayPath(directory)
        guard let dir = opendir(full) else { throw Self.error(errno, full) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    public func writeText(_ text: String, to path: String) throws(BoardFileError) {
        let full = self.displayPath(path)
        // No O_CREAT: a sysfs attribute that does not exist is a wrong path, not a file to make.
        let fd = open(full, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard fd >= 0 else { throw Self.error(errno, full) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Self.error(errno, full)
            }
            written += n
        }
    }

    static func error(_ code: Int32, _ path: String) -> BoardFileError {
        let reason = String(cString: strerror(code))
        switch code {
        case ENOENT, ENOTDIR, ENODEV, ENXIO: return BoardFileError(.notFound, path: path, reason: reason)
        case EACCES, EPERM: return BoardFileError(.permissionDenied, path: path, reason: reason)
        case EIO, ETIMEDOUT, EAGAIN, EBUSY: return BoardFileError(.transient, path: path, reason: reason)
        default: return BoardFileError(.other, path: path, reason: reason)
        }
    }
}
