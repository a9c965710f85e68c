import AgentCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a configuration file crash-safely: a temporary file created with its final mode (never readable by others,
/// not even for a moment), written, fsynced, checked, renamed over the target, then the folder fsynced.
public enum ConfigurationFileWriter {
    /// Saves `text` to `path` with `mode`. `check` runs on the temporary file's path before it replaces anything;
    /// when it throws, the temporary file is removed and the target is left as it was.
    /// - Parameter overwrite: when false, an existing `path` is an error.
    public static func save(
        _ text: String, to path: String, mode: mode_t = 0o600, group: gid_t? = nil, overwrite: Bool,
        check: (String) throws(AgentError) -> Void = { _ throws(AgentError) in }
    ) throws(AgentError) {
        let folder = Self.folder(of: path)
        if !overwrite && access(path, F_OK) == 0 {
            throw AgentError(.storageFailure, "\(path) already exists; pass --force to replace it")
        }
        try Self.makeFolder(folder)
        let temporary = "\(folder)/.\(Self.fileName(of: path)).tmp-\(getpid())"
        // O_EXCL: never write through a link someone left at the temporary name.
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0o700)
        guard fd >= 0 else { throw Self.failure("could not create \(temporary)", errno) }
        var closed = false
        defer {
            if !closed { close(fd) }
        }
        do throws(AgentError) {
            let bytes = Array(text.utf8)
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw Self.failure("could not write \(temporary)", errno)
                }
                offset += n
            }
            // Group first, then the mode: the file is never readable by a group it was not meant for.
            if let group, fchown(fd, uid_t.max, group) != 0 {
                throw Self.failure("could not give \(temporary) to group \(group)", errno)
            }
            // The umask may have narrowed the mode at creation; set it exactly.
            guard fchmod(fd, mode) == 0 else { throw Self.failure("could not set the mode of \(temporary)", errno) }
            guard fsync(fd) == 0 else { throw Self.failure("could not flush \(temporary)", errno) }
            closed = true
            guard close(fd) == 0 else { throw Self.failure("could not close \(temporary)", errno) }
            try check(temporary)
            if !overwrite && access(path, F_OK) == 0 {
                throw AgentError(.storageFailure, "\(path) already exists; pass --force to replace it")
            }
            guard rename(temporary, path) == 0 else { throw Self.failure("could not rename \(temporary) to \(path)", errno) }
        } catch {
            unlink(temporary)
            throw error
        }
        let dirFD = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 {
            _ = fsync(dirFD)
            close(dirFD)
        }
    }

    static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let folder = String(path[..<slash])
        return folder.isEmpty ? "/" : folder
    }

    static func fileName(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// Creates `folder` and its parents (mode 0755) when missing.
    static func makeFolder(_ folder: String) throws(AgentError) {
        var info = stat()
        if stat(folder, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else {
                throw AgentError(.storageFailure, "\(folder) is not a directory")
            }
            return
        }
        let parent = Self.folder(of: folder)
        if parent != folder && parent != "." { try Self.makeFolder(parent) }
        if mkdir(folder, 0o755) != 0 && errno != EEXIST {
            throw Self.failure("could not create the folder \(folder)", errno)
        }
    }

    static func failure(_ what: String, _ code: Int32) -> AgentError {
        AgentError(.storageFailure, "\(what): \(String(cString: strerror(code)))")
    }
}
