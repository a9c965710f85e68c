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
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < limit {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(POSIXError(errno))
            }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return .success(bytes)
    }

    /// The names in a folder except `.` and `..`, sorted; or the errno of the failure.
    public static func list(_ path: String) -> Result<[String], POSIXError> {
        guard let dir = opendir(path) else { return .failure(POSIXError(errno)) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return .success(names.sorted())
    }
}

/// An errno, as an error.
public struct POSIXError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: CInt
    public init(_ code: CInt) { self.code = code }
    public var description: String { String(cString: strerror(self.code)) }
}
