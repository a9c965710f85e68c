import AgentCore

#if canImport(Glibc)
import AgentHost
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `SystemRoot` on the file system: `/` on a board, a fixture folder in tests, `board/simulated/sysroot` for the
/// simulated board.
///
/// Paths are joined below `path`. Symbolic links inside the tree are followed by the kernel, so relative links (as
/// the kernel makes them in `/sys`) stay inside a fixture tree.
public struct DiskSystemRoot: SystemRoot {
    /// The root folder, without a trailing slash (`/` stays `/`).
    public let path: String

    public init(path: String) {
        var trimmed = path
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.path = trimmed.isEmpty ? "/" : trimmed
    }

    public var location: String { self.path }

    /// The absolute path of `relative` below the root.
    public func absolute(_ relative: String) -> String {
        let inner = SystemPath.components(relative).joined(separator: "/")
        if inner.isEmpty { return self.path }
        return self.path == "/" ? "/" + inner : self.path + "/" + inner
    }

    public func readFile(_ relative: String) throws(SystemRootError) -> [UInt8] {
        switch POSIXFile.read(self.absolute(relative), limit: .max) {
        case .success(let bytes): return bytes
        case .failure(let error): throw Self.error(relative, error.code)
        }
    }

    public func listDirectory(_ relative: String) throws(SystemRootError) -> [String] {
        switch POSIXFile.list(self.absolute(relative)) {
        case .success(let names): return names
        case .failure(let error): throw Self.error(relative, error.code)
        }
    }

    public func readSymbolicLink(_ relative: String) throws(SystemRootError) -> String? {
        let full = self.absolute(relative)
        var info = stat()
        guard lstat(full, &info) == 0 else { throw Self.error(relative, errno) }
        guard (info.st_mode & S_IFMT) == S_IFLNK else { return nil }
        var buffer = [CChar](repeating: 0, count: 4097)
        let count = buffer.withUnsafeMutableBufferPointer { raw -> Int in
            guard let base = raw.baseAddress else { return -1 }
            return readlink(full, base, 4096)
        }
        guard count >= 0 else { throw Self.error(relative, errno) }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func error(_ path: String, _ code: Int32) -> SystemRootError {
        switch code {
        case ENOENT: return SystemRootError(path: path, reason: .notFound)
        case ENOTDIR: return SystemRootError(path: path, reason: .notADirectory)
        case EACCES, EPERM: return SystemRootError(path: path, reason: .permissionDenied)
        case ELOOP: return SystemRootError(path: path, reason: .tooManyLinks)
        default: return SystemRootError(path: path, reason: .other(String(cString: strerror(code))))
        }
    }
}

/// Derives the device name from the board this process runs on (or the tree `[device] sysroot` names).
public enum HardwareIdentity {
    /// Reads the identity sources under `settings.sysroot` and fills `settings.nameTemplate`.
    /// - Throws: `AgentError.identityUnavailable` naming the missing source and what was tried.
    public static func derive(_ settings: DeviceSettings) throws(AgentError) -> DerivedIdentity {
        var info = stat()
        guard stat(settings.sysroot, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw AgentError(
                .identityUnavailable,
                "[device] sysroot \"\(settings.sysroot)\" is not a directory: set it to \"/\" on a board, or to a "
                    + "system-root tree such as board/simulated/sysroot")
        }
        return try HardwareIdentityRules.derive(settings, root: DiskSystemRoot(path: settings.sysroot))
    }
}
