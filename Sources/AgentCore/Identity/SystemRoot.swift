/// Read access to a Linux system tree (`/`, or a fixture tree that looks like one), by paths relative to its root.
///
/// Identity rules and sensor readers go through this port so that they can run against fixture trees in tests and
/// against the simulated board. `AgentPlatform.DiskSystemRoot` implements it on the file system.
public protocol SystemRoot: Sendable {
    /// Where the tree is, for messages: `/` or the fixture folder.
    var location: String { get }

    /// The bytes of the file at `path` (relative to the root), read to the end; symbolic links are followed.
    func readFile(_ path: String) throws(SystemRootError) -> [UInt8]

    /// The names in the directory at `path`, sorted, without `.` and `..`; symbolic links are followed.
    func listDirectory(_ path: String) throws(SystemRootError) -> [String]

    /// The target of the symbolic link at `path` exactly as stored (like `readlink`), or nil when `path` exists and
    /// is not a symbolic link.
    func readSymbolicLink(_ path: String) throws(SystemRootError) -> String?
}

/// Why a file under a system root could not be read.
public struct SystemRootError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        case notFound
        case notADirectory
        case permissionDenied
        case tooManyLinks
        case other(String)
    }

    /// The path relative to the root.
    public let path: String
    public let reason: Reason

    public init(path: String, reason: Reason) {
        self.path = path
        self.reason = reason
    }

    public var description: String {
        switch self.reason {
        case .notFound: return "\(self.path): not found"
        case .notADirectory: return "\(self.path): not a directory"
        case .permissionDenied: return "\(self.path): permission denied"
        case .tooManyLinks: return "\(self.path): too many levels of symbolic links"
        case .other(let text): return "\(self.path): \(text)"
        }
    }
}

extension SystemRoot {
    /// The file at `path` as text (UTF-8, invalid bytes replaced), or nil when it cannot be read.
    public func readText(_ path: String) -> String? {
        guard let bytes = try? self.readFile(path) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Whether something exists at `path` (a file, a directory or a link).
    public func exists(_ path: String) -> Bool {
        do {
            _ = try self.readSymbolicLink(path)
            return true
        } catch {
            return false
        }
    }

    /// `path` with every symbolic link followed, relative to the root (like `realpath` inside a chroot: absolute
    /// link targets start again at the root, and `..` never climbs above it).
    ///
    /// `sys/class/net/eth0` resolves to `sys/devices/platform/…/net/eth0` on a real kernel.
    public func resolvedPath(_ path: String) throws(SystemRootError) -> String {
        var pending = SystemPath.components(path)
        var resolved: [String] = []
        var hops = 0
        while !pending.isEmpty {
            let component = pending.removeFirst()
            if component == "." { continue }
            if component == ".." {
                if !resolved.isEmpty { resolved.removeLast() }
                continue
            }
            let candidate = (resolved + [component]).joined(separator: "/")
            guard let target = try self.readSymbolicLink(candidate) else {
                resolved.append(component)
                continue
            }
            hops += 1
            guard hops <= 40 else { throw SystemRootError(path: path, reason: .tooManyLinks) }
            if target.hasPrefix("/") { resolved = [] }
            pending = SystemPath.components(target) + pending
        }
        return resolved.joined(separator: "/")
    }
}

/// Small helpers for root-relative paths.
public enum SystemPath {
    /// The non-empty components of `path` (`"/a//b/"` gives `["a", "b"]`).
    public static func components(_ path: String) -> [String] {
        path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
    }

    /// `parts` joined with `/`, without doubled separators.
    public static func join(_ parts: String...) -> String {
        parts.flatMap { self.components($0) }.joined(separator: "/")
    }
}
