import AgentCore
import AgentHost
import Glibc
import TBChecksum
import TextSearch

/// The system's package manager as the root step of an update uses it for a firmware package that is a `.deb`: what
/// is installed, a `.deb` of it to roll back to, and installing one. `DebianPackager` is dpkg; tests pass a fake.
public protocol SystemPackager: Sendable {
    /// The installed version of `name`, fully installed; otherwise an error saying what state it is in.
    func installedVersion(_ name: String) throws(AgentError) -> String
    /// Writes a `.deb` of the installed `name`, as it is installed now (files, maintainer scripts, conffiles), to
    /// `path`, using `workDirectory` (created and removed) to assemble it.
    func repack(_ name: String, to path: String, workDirectory: String) throws(AgentError)
    /// Installs the `.deb` at `path` (an upgrade or a downgrade), keeping the administrator's configuration files.
    func install(_ path: String) throws(AgentError)
}

/// dpkg as the root step runs it: `dpkg-query` for the installed state, a `.deb` rebuilt from the installed files
/// and dpkg's own records (as `dpkg-repack` does, which Debian does not install by default), and `dpkg -i` with
/// the configuration files kept and no questions asked. Blocking: it runs on the root step's thread.
public struct DebianPackager: SystemPackager {
    /// The environment of every command it runs: nothing of the root step's own, no questions (debconf).
    public var environment = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive"]
    /// How long `dpkg -i` waits for another package manager (apt, unattended-upgrades) to release dpkg's lock.
    public var lockWait: Duration = .seconds(300)

    public init() {}

    func run(_ program: String, _ arguments: [String], seconds: Int = 60, outputLimit: Int = 64 << 10) throws(AgentError) -> Subprocess.Outcome {
        guard let path = UpdateInstaller.resolve(program), access(path, X_OK) == 0 else {
            throw AgentError(.storageFailure, "\(program) is not installed (looked in /usr/sbin, /usr/bin, /sbin and /bin): a .deb update needs dpkg")
        }
        do {
            return try Subprocess.run(path, arguments: arguments, environment: self.environment, timeoutMilliseconds: seconds * 1000, outputLimit: outputLimit)
        } catch {
            throw AgentError(.storageFailure, "\(error)")
        }
    }

    static func lastLines(_ output: [UInt8], _ count: Int = 2) -> String {
        let lines = String(decoding: output.suffix(2000), as: UTF8.self).split(separator: "\n").suffix(count)
        return lines.isEmpty ? "" : ": " + lines.joined(separator: " / ")
    }

    public func installedVersion(_ name: String) throws(AgentError) -> String {
        let query = try self.run("dpkg-query", ["--show", "--showformat=${db:Status-Abbrev}|${Version}", name])
        guard query.succeeded else {
            throw AgentError(.storageFailure, "dpkg does not know \(name) (dpkg-query ended with \(query.summary)\(Self.lastLines(query.output, 1))): this board's agent was not installed from a .deb")
        }
        let text = String(decoding: query.output, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        let parts = text.split(separator: "|", maxSplits: 1).map { String($0.filter { $0 != " " }) }
        guard parts.count == 2, !parts[1].isEmpty else {
            throw AgentError(.storageFailure, "dpkg-query printed \"\(text.prefix(80))\" for \(name), not a status and a version")
        }
        guard parts[0] == "ii" else {
            throw AgentError(.storageFailure, "\(name) \(parts[1]) is not fully installed (dpkg status \"\(parts[0])\"): run `dpkg --configure -a` as root, then assign the update again")
        }
        return parts[1]
    }

    public func repack(_ name: String, to path: String, workDirectory: String) throws(AgentError) {
        try self.removeTree(workDirectory)
        defer { try? self.removeTree(workDirectory) }
        let tree = workDirectory + "/root"
        let control = tree + "/DEBIAN"
        for directory in [workDirectory, tree, control] where mkdir(directory, 0o755) != 0 {
            throw AgentError(.storageFailure, "cannot create \(directory) to rebuild the installed \(name): \(AtomicFile.IOError.text(errno))")
        }
        // The control file: dpkg's record without what only the database keeps.
        let status = try self.run("dpkg-query", ["--status", name])
        guard status.succeeded else {
            throw AgentError(.storageFailure, "dpkg-query --status \(name) ended with \(status.summary)\(Self.lastLines(status.output, 1))")
        }
        try Self.write(Self.controlFile(fromStatus: status.output), to: control + "/control", mode: 0o644)
        // dpkg keeps the conffiles in its status record, not as a file: the ones still on the system.
        let recorded = Self.conffiles(fromStatus: status.output).filter { HostProcess.exists($0.path) }
        let conffiles = recorded.map(\.path)
        if !conffiles.isEmpty {
            try Self.write(Array(conffiles.map { $0 + "\n" }.joined().utf8), to: control + "/conffiles", mode: 0o644)
        }
        // The maintainer scripts and the like (postinst, prerm, postrm, triggers, …) as dpkg keeps them.
        let controlFiles = try self.run("dpkg-query", ["--control-path", name])
        guard controlFiles.succeeded else {
            throw AgentError(.storageFailure, "dpkg-query --control-path \(name) ended with \(controlFiles.summary)\(Self.lastLines(controlFiles.output, 1))")
        }
        for source in String(decoding: controlFiles.output, as: UTF8.self).split(separator: "\n").map(String.init) {
            let base = AtomicFile.name(of: source)
            guard let dot = base.lastIndex(of: "."), base[..<dot] == name || base[..<dot].hasPrefix(name + ":") else { continue }
            let kind = String(base[base.index(after: dot)...])
            // md5sums is made anew below: the files may have changed since (a binary update).
            guard !["list", "conffiles", "md5sums"].contains(kind), !kind.isEmpty, !kind.contains("/") else { continue }
            let script = ["preinst", "postinst", "prerm", "postrm", "config"].contains(kind)
            try Self.copyFile(source, to: control + "/" + kind, mode: script ? 0o755 : 0o644)
        }
        // The installed files, as they are now.
        let list = try self.run("dpkg-query", ["--listfiles", name], outputLimit: 4 << 20)
        guard list.succeeded else {
            throw AgentError(.storageFailure, "dpkg-query --listfiles \(name) ended with \(list.summary)\(Self.lastLines(list.output, 1))")
        }
        var sums = ""
        let files = String(decoding: list.output, as: UTF8.self).split(separator: "\n").filter { $0.hasPrefix("/") && $0 != "/." }.map(String.init)
        // A folder of the package may be a link on the system (/lib → usr/lib on a merged /usr): what holds other
        // entries is a folder in the package.
        var folders = Set<String>()
        for file in files {
            var parent = Substring(file)
            while let slash = parent.lastIndex(of: "/"), slash != parent.startIndex {
                parent = parent[..<slash]
                if !folders.insert(String(parent)).inserted { break }
            }
        }
        var digests: [String: String] = [:]
        for file in files {
            guard let md5 = try Self.copyEntry(file, into: tree, folder: folders.contains(file)) else { continue }
            digests[file] = md5
            if !conffiles.contains(file) { sums += "\(md5)  \(file.dropFirst())\n" }
        }
        // A conffile the administrator edited is packed as the package shipped it (the copy of it that the package
        // holds elsewhere, found by the MD5 dpkg recorded): dpkg then keeps the edited file through the downgrade
        // and the next upgrade alike. Packed as edited, dpkg would take the edit for the package's own text and
        // replace it silently at the next upgrade. Without such a copy it is packed as it is.
        for conffile in recorded where digests[conffile.path] != conffile.md5 {
            if let pristine = digests.first(where: { $0.value == conffile.md5 && !conffiles.contains($0.key) })?.key {
                var info = stat()
                let mode = lstat(conffile.path, &info) == 0 ? info.st_mode & 0o7777 : 0o644
                _ = unlink(tree + conffile.path)
                try Self.copyFile(tree + pristine, to: tree + conffile.path, mode: mode)
            }
        }
        try Self.write(Array(sums.utf8), to: control + "/md5sums", mode: 0o644)
        let built = try self.run(
            "dpkg-deb", ["--root-owner-group", "-Zgzip", "--build", tree, path], seconds: 600)
        guard built.succeeded else {
            throw AgentError(.storageFailure, "dpkg-deb could not rebuild the installed \(name) as \(path) (\(built.summary)\(Self.lastLines(built.output)))")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0, fsync(fd) == 0 else {
            if fd >= 0 { close(fd) }
            throw AgentError(.storageFailure, "cannot make \(path) durable: \(AtomicFile.IOError.text(errno))")
        }
        close(fd)
        try? AtomicFile.syncDirectory(HostProcess.parent(of: path))
    }

    public func install(_ path: String) throws(AgentError) {
        let arguments = ["--force-confold", "--force-confdef", "--install", path]
        let waitUntil = UpdateInstaller.now() + self.lockWait
        while true {
            let outcome = try self.run("dpkg", arguments, seconds: 1800)
            if outcome.succeeded { return }
            let said = String(decoding: outcome.output, as: UTF8.self)
            // Another package manager holds dpkg's lock (dpkg exits 2 at once, having changed nothing): wait for it.
            if said.includes("locked by another process") && UpdateInstaller.now() < waitUntil {
                UpdateInstaller.sleep(.seconds(10))
                continue
            }
            throw AgentError(.storageFailure, "dpkg --install \(path) ended with \(outcome.summary)\(Self.lastLines(outcome.output, 3))")
        }
    }

    /// dpkg's status paragraph as a control file: Status, Conffiles and Config-Version (with their continuation
    /// lines) are the database's, not the package's.
    public static func controlFile(fromStatus status: [UInt8]) -> [UInt8] {
        var out: [Substring] = []
        var skipping = false
        for line in String(decoding: status, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty { if !out.isEmpty { break } else { continue } }
            if line.first == " " || line.first == "\t" {
                if !skipping { out.append(line) }
                continue
            }
            let field = line.prefix { $0 != ":" }.lowercased()
            skipping = ["status", "conffiles", "config-version"].contains(field)
            if !skipping { out.append(line) }
        }
        return Array((out.joined(separator: "\n") + "\n").utf8)
    }

    /// The paths of dpkg's Conffiles field (" /etc/x 0123…abc") with the MD5 of the text the package shipped,
    /// without the obsolete ones.
    public static func conffiles(fromStatus status: [UInt8]) -> [(path: String, md5: String)] {
        var paths: [(path: String, md5: String)] = []
        var inside = false
        for line in String(decoding: status, as: UTF8.self).split(separator: "\n") {
            if line.first == " " || line.first == "\t" {
                guard inside else { continue }
                let words = line.split(separator: " ")
                if words.count == 2, words[0].hasPrefix("/") { paths.append((String(words[0]), String(words[1]))) }
                continue
            }
            inside = line.lowercased().hasPrefix("conffiles:")
        }
        return paths
    }

    /// Recreates `path` of the installed system under `tree`: a folder with its mode, a file's bytes and mode, a
    /// link as a link. What is gone from the system (removed by hand) is left out. A file's MD5, for md5sums.
    static func copyEntry(_ path: String, into tree: String, folder: Bool = false) throws(AgentError) -> String? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        let destination = tree + path
        // dpkg's list need not name every parent folder (a package unpacked over a merged /usr).
        var parent = tree
        for component in path.split(separator: "/").dropLast() {
            parent += "/" + component
            if mkdir(parent, 0o755) != 0 && errno != EEXIST {
                throw AgentError(.storageFailure, "cannot create \(parent): \(AtomicFile.IOError.text(errno))")
            }
        }
        switch folder ? S_IFDIR : info.st_mode & S_IFMT {
        case S_IFDIR:
            if mkdir(destination, 0o755) != 0 && errno != EEXIST {
                throw AgentError(.storageFailure, "cannot create \(destination): \(AtomicFile.IOError.text(errno))")
            }
            _ = chmod(destination, info.st_mode & S_IFMT == S_IFDIR ? info.st_mode & 0o7777 : 0o755)
        case S_IFREG:
            return try Self.copyFile(path, to: destination, mode: info.st_mode & 0o7777)
        case S_IFLNK:
            var buffer = [CChar](repeating: 0, count: 4096)
            let n = readlink(path, &buffer, buffer.count - 1)
            guard n > 0 else { return nil }
            let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if symlink(target, destination) != 0 {
                throw AgentError(.storageFailure, "cannot create the link \(destination): \(AtomicFile.IOError.text(errno))")
            }
        default:
            break
        }
        return nil
    }

    /// Copies `source` to a new file `destination` with `mode`; returns the bytes' MD5.
    @discardableResult
    static func copyFile(_ source: String, to destination: String, mode: mode_t) throws(AgentError) -> String {
        let input = open(source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard input >= 0 else { throw AgentError(.storageFailure, "cannot open \(source): \(AtomicFile.IOError.text(errno))") }
        defer { close(input) }
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard output >= 0 else { throw AgentError(.storageFailure, "cannot create \(destination): \(AtomicFile.IOError.text(errno))") }
        defer { close(output) }
        var md5 = Checksum(.md5)
        var failure: String? = nil
        _ = UpdateInstaller.pump(from: input, source, to: output, destination, failure: &failure) { md5.update($0) }
        if let failure { throw AgentError(.storageFailure, failure) }
        guard fchmod(output, mode) == 0 else {
            throw AgentError(.storageFailure, "cannot set the mode of \(destination): \(AtomicFile.IOError.text(errno))")
        }
        return md5.hexDigest()
    }

    static func write(_ bytes: [UInt8], to path: String, mode: mode_t) throws(AgentError) {
        do {
            try AtomicFile.write(bytes, to: path, mode: mode)
        } catch {
            throw AgentError(.storageFailure, "cannot write \(path): \(error)")
        }
    }

    /// Removes a folder of the root step's own (`rm -rf --one-file-system`, links not followed).
    func removeTree(_ path: String) throws(AgentError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        let removed = try self.run("rm", ["-rf", "--one-file-system", "--", path], seconds: 120)
        guard removed.succeeded else {
            throw AgentError(.storageFailure, "cannot remove \(path): rm ended with \(removed.summary)\(Self.lastLines(removed.output, 1))")
        }
    }
}
