#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The two file operations every part of the agent needs (identity files, sensor files, the simulated board, the
/// spool), in one place: read a whole file and list a folder, reporting failures as the `errno` that caused them.
public enum POSIXFile {
    /// The whole file, read until end of file (sysfs files report a size of 4096 whatever they hold), at most
    /// `limit` bytes; or the errno of the failure.
    public static func read(_ path: String, limit: Int = 1 << 20) -> Result<[UInt8], POSIXError> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(POSIXError(errno)) }
        defer { close(fd) }
        return Self.read(fd: fd, limit: limit, beyondLimit: .stop)
    }

    /// What `read(fd:limit:beyondLimit:)` does with a file longer than its limit.
    public enum BeyondLimit: Sendable {
        /// Returns the first bytes (at least `limit`).
        case stop
        /// Fails with EFBIG.
        case fail
    }

    /// An open descriptor read until end of file, at most about `limit` bytes; or the errno of the failure.
    public static func read(fd: CInt, limit: Int, beyondLimit: BeyondLimit) -> Result<[UInt8], POSIXError> {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(POSIXError(errno))
            }
            if n == 0 { return .success(bytes) }
            bytes += chunk[0..<n]
            if bytes.count > limit {
                switch beyondLimit {
                case .stop: return .success(bytes)
                case .fail: return .failure(POSIXError(EFBIG))
                }
            }
        }
    }

    /// The names in a folder except `.` and `..`, sorted; or the errno of the failure.
    public static func list(_ path: String) -> Result<[String], POSIXError> {
        guard let dir = opendir(path) else { return .failure(POSIXError(errno)) }
        return .success(Self.names(dir))
    }

    /// The names in an open directory stream except `.` and `..`, sorted; the stream is closed.
    public static func names(_ dir: OpaquePointer) -> [String] {
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
}

/// An errno, as an error.
public struct POSIXError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: CInt
    public init(_ code: CInt) { self.code = code }
    public var description: String { String(cString: strerror(self.code)) }
}
