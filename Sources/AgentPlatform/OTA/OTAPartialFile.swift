import AgentCore
import AgentHost
import Glibc
import TBChecksum
import TBJSON

/// `state_dir/ota/`: the package being downloaded (`package.part`) and what it is (`package.json`: the package's
/// title, version, size and checksum, how many bytes of the part are durable, whether it was verified).
///
/// The part is appended to and made durable (fsync) only when the download asks (`OTADownload.Settings.syncEvery`,
/// and at the end); then `package.json` is replaced crash-safely (AtomicFile) with the new durable length. At start
/// only that length is trusted: the part is cut back to it and hashed again, so a power cut costs at most the bytes
/// since the last sync, never a damaged package. Used by the run loop only (one owner); writes are a few per
/// hundred kilobytes, as the spool's are on the loop.
public final class OTAPartialFile {
    public let directory: String
    var partPath: String { self.directory + "/package.part" }
    var metadataPath: String { self.directory + "/package.json" }
    var fd: CInt = -1
    var package: OTAPackage? = nil

    public init(stateDirectory: String) { self.directory = stateDirectory + "/ota" }

    /// A download kept elsewhere than `state_dir/ota` (software packages: `state_dir/ota/software`).
    public init(directory: String) { self.directory = directory }

    var installedPath: String { self.directory + "/installed.json" }

    /// The package last installed from this folder (`recordInstalled`), if any: what runs now, for software.
    public func installed() -> (title: String, version: String)? {
        guard let bytes = try? AtomicFile.read(self.installedPath), let json = try? JSONValue.parse(bytes),
              let title = json["title"]?.stringValue, let version = json["version"]?.stringValue else { return nil }
        return (title, version)
    }

    /// Records `package` as installed (crash-safely), before its part is removed.
    public func recordInstalled(_ package: OTAPackage) throws(AgentError) {
        do {
            try AtomicFile.write(JSONValue.object([("title", .string(package.title)), ("version", .string(package.version))]).serializedBytes, to: self.installedPath)
        } catch {
            throw AgentError(.storageFailure, "cannot record the installed package in \(self.installedPath): \(error); check the state directory")
        }
    }

    deinit { if self.fd >= 0 { close(self.fd) } }

    /// The download found at start, if any, with its durable prefix hashed again; notes for the log.
    public func restore() -> (restored: OTADownload.Restored?, notes: [String]) {
        // The binary a check took out of a .deb, if the agent stopped during the check (it is taken out again).
        _ = unlink(FirmwareInspector.extractedPath(besides: self.partPath))
        guard let bytes = try? AtomicFile.read(self.metadataPath) else {
            if access(self.partPath, F_OK) == 0 { self.removeFiles() }
            return (nil, [])
        }
        guard let json = try? JSONValue.parse(bytes), let (package, durable, verified) = OTAPackage.parse(json) else {
            self.removeFiles()
            return (nil, ["\(self.metadataPath) was not readable; the partial firmware download was removed and starts again"])
        }
        let fd = open(self.partPath, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        var status = stat()
        guard fd >= 0, fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG, Int(status.st_size) >= durable else {
            if fd >= 0 { close(fd) }
            self.removeFiles()
            return (nil, ["\(self.partPath) is missing or shorter than its metadata says; the firmware download starts again"])
        }
        // Bytes written after the last sync are not trusted.
        if Int(status.st_size) > durable { _ = ftruncate(fd, off_t(durable)) }
        var checksum = Checksum(package.algorithm)
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var offset = 0
        while offset < durable {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, min($0.count, durable - offset), off_t(offset)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                close(fd)
                self.removeFiles()
                return (nil, ["\(self.partPath) could not be read (\(AtomicFile.IOError.text(errno))); the firmware download starts again"])
            }
            buffer.withUnsafeBytes { checksum.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            offset += n
        }
        _ = lseek(fd, off_t(durable), SEEK_SET)
        if verified && durable == package.size {
            close(fd)  // complete: it is run to check it, which a descriptor open for writing forbids (ETXTBSY)
        } else {
            self.fd = fd
        }
        self.package = package
        return (OTADownload.Restored(package: package, durableBytes: durable, checksum: checksum, verified: verified), [])
    }

    /// Free bytes in the state directory for an unprivileged writer (statvfs `f_bavail`).
    public func freeBytes() -> Int? {
        var status = statvfs()
        let target = access(self.directory, F_OK) == 0 ? self.directory : HostProcess.parent(of: self.directory)
        guard statvfs(target, &status) == 0 else { return nil }
        let (product, overflow) = Int(status.f_bavail).multipliedReportingOverflow(by: Int(status.f_frsize))
        return overflow ? Int.max : product
    }

    /// An empty part for `package`, replacing any other, once the free space is checked.
    public func begin(_ package: OTAPackage) throws(AgentError) {
        self.discard()
        // The folder and its parent (software's is `ota/software`).
        _ = mkdir(HostProcess.parent(of: self.directory), 0o700)
        if mkdir(self.directory, 0o700) != 0 && errno != EEXIST {
            throw AgentError(.storageFailure, "cannot create \(self.directory) for the firmware download: \(AtomicFile.IOError.text(errno)); check the state directory's permissions")
        }
        if let free = self.freeBytes(), let problem = OTADownload.spaceProblem(package: package, free: free, directory: self.directory) {
            throw AgentError(.storageFailure, problem)
        }
        let fd = open(self.partPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw self.failure("creating", errno) }
        self.fd = fd
        self.package = package
        try self.writeMetadata(durable: 0, verified: false)
    }

    public func append(_ bytes: [UInt8]) throws(AgentError) {
        guard self.fd >= 0 else { throw AgentError(.storageFailure, "the firmware download's file is not open") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(self.fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw self.failure("writing", n < 0 ? errno : ENOSPC) }
            written += n
        }
    }

    /// Makes the part durable, then records `durable` bytes as trusted.
    public func sync(durable: Int) throws(AgentError) {
        guard self.fd >= 0, fsync(self.fd) == 0 else { throw self.failure("fsync of", self.fd >= 0 ? errno : EBADF) }
        try self.writeMetadata(durable: durable, verified: false)
    }

    public func markVerified() throws(AgentError) {
        try self.writeMetadata(durable: self.package?.size ?? 0, verified: true)
        // Complete: no more writes. Closed, since a program open for writing cannot be run (ETXTBSY), and the
        // package is run to check it.
        if self.fd >= 0 { close(self.fd) }
        self.fd = -1
    }

    /// Removes the part and its metadata (a failed or abandoned download; frees the space at once).
    public func discard() {
        if self.fd >= 0 { close(self.fd) }
        self.fd = -1
        self.package = nil
        self.removeFiles()
    }

    func removeFiles() {
        _ = unlink(self.metadataPath)
        _ = unlink(self.partPath)
        try? AtomicFile.syncDirectory(self.directory)
    }

    func writeMetadata(durable: Int, verified: Bool) throws(AgentError) {
        guard let package = self.package else { return }
        do {
            try AtomicFile.write(package.json(durableBytes: durable, verified: verified).serializedBytes, to: self.metadataPath)
        } catch let error as AtomicFile.IOError {
            throw self.failure("writing", error.errno, path: self.metadataPath)
        } catch {
            throw AgentError(.storageFailure, "cannot write \(self.metadataPath): \(error)")
        }
    }

    func failure(_ operation: String, _ code: CInt, path: String? = nil) -> AgentError {
        let path = path ?? self.partPath
        let text = AtomicFile.IOError.text(code)
        if code == ENOSPC || code == EFBIG || code == EDQUOT {
            return AgentError(.storageFailure, "the disk is full: \(operation) \(path) failed (\(text)); the partial download was removed. Free space in \(self.directory) (the spool and logs share it) and assign the package again, or restart the agent")
        }
        return AgentError(.storageFailure, "\(operation) \(path) failed (\(text)); the partial download was removed. Check the state directory, then assign the package again or restart the agent")
    }
}
