import AgentCore
import AgentHost
import AgentPlatform

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
        // sysfs attributes fit in one page; a runaway file is not a sensor.
        switch POSIXFile.read(full, limit: 1 << 20) {
        case .success(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .failure(let error): throw Self.error(error.code, full)
        }
    }

    public func list(_ directory: String) throws(BoardFileError) -> [String] {
        let full = self.displayPath(directory)
        switch POSIXFile.list(full) {
        case .success(let names): return names
        case .failure(let error): throw Self.error(error.code, full)
        }
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
