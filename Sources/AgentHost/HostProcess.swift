#if canImport(Glibc)
import Glibc
#endif

/// What the command line needs from the process and the file system without Foundation: the environment,
/// standard error, whether a path exists, absolute paths.
public enum HostProcess {
    /// The process's environment (`environ`), the first value of a repeated name winning as getenv does.
    public static func environment() -> [String: String] {
        var out: [String: String] = [:]
        let start: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = environ
        guard var entry = start else { return out }
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                let name = String(text[..<equals])
                if out[name] == nil { out[name] = String(text[text.index(after: equals)...]) }
            }
            entry += 1
        }
        return out
    }

    /// Writes `text` to standard error as is (no newline added), whole, retrying short writes.
    public static func writeStandardError(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            bytes = bytes.dropFirst(written)
        }
    }

    /// Standard input to its end, at most `limit` bytes (a secret piped in, a document).
    public static func readStandardInput(limit: Int = 16 << 20) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while out.count < limit {
            let count = chunk.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, min($0.count, limit - out.count)) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            out += chunk[..<count]
        }
        return out
    }

    /// True when something (a file, a folder, a dangling link's target excepted) is at `path`.
    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    /// `path` made absolute against the current directory, with `.`, `..` and doubled slashes removed.
    public static func absolutePath(_ path: String) -> String {
        guard !path.hasPrefix("/") else { return Self.normalize(path) }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let cwd = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return Self.normalize("\(cwd)/\(path)")
    }

    /// The folder holding `path` ("." for a bare name, "/" for a file at the root).
    public static func parent(of path: String) -> String {
        let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        let parent = String(trimmed[..<slash])
        return parent.isEmpty ? "/" : parent
    }

    /// Removes `.` and `..` components and doubled slashes.
    public static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == "..", let last = parts.last, last != ".." {
                parts.removeLast()
                continue
            }
            if part == ".." && path.hasPrefix("/") { continue }  // "/.." is "/"
            parts.append(part)
        }
        let joined = parts.joined(separator: "/")
        return path.hasPrefix("/") ? "/" + joined : (joined.isEmpty ? "." : joined)
    }
}
