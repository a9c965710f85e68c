import AgentCore
import AgentHost
import Glibc
import TBChecksum
import TBJSON

/// The root step of a firmware update (`tb-agent apply-update`, started by `tb-agent-update.path` when the agent
/// leaves `state_dir/ota/ready`): installs the package the agent verified and checked, keeps the previous binary,
/// restarts the agent and waits for the new version to confirm that it stayed online. Without a confirmation within
/// the window (it did not start, crashed, could not connect) it puts the previous binary back, restarts the agent
/// and leaves a FAILED outcome saying why; with one, it removes the previous binary and leaves UPDATED. Each step
/// is crash-safe: a power cut leaves the old binary or the new one whole, and the trial record that a later run
/// (the path unit fires again at boot while `trial` is there) takes up.
///
/// What it trusts: the state directory belongs to the agent's user, so it reads only regular files there (no links
/// followed, the `ota` folder itself not a link), hashes the package while it copies it and installs that copy only
/// if the hash is the one the agent verified against the server's, and writes its own files there owned by that
/// user. The previous binary is kept in root's `backup_directory`, out of the agent's reach.
public struct UpdateInstaller: Sendable {
    public struct Settings: Sendable {
        public var stateDirectory: String
        /// The installed binary to replace (the running `tb-agent`'s own path, as a rule).
        public var target: String
        public var backupDirectory: String
        public var window: Duration
        public var restartCommand: [String]
        public var pollInterval: Duration = .milliseconds(500)
        /// Installs a firmware package that is a `.deb` (dpkg; a fake in tests).
        public var packager: any SystemPackager = DebianPackager()
        /// The Debian package the agent is installed from.
        public var packageName = "tb-agent"

        public init(stateDirectory: String, target: String, backupDirectory: String, window: Duration, restartCommand: [String]) {
            self.stateDirectory = stateDirectory
            self.target = target
            self.backupDirectory = backupDirectory
            self.window = window
            self.restartCommand = restartCommand
        }
    }

    public enum Result: Sendable, Equatable {
        case nothingToDo
        case updated(String)
        /// The update was refused or rolled back (the outcome file says why; the agent reports it).
        case failed(String)
    }

    public let settings: Settings
    let files: UpdateFiles
    let log: @Sendable (String) -> Void

    public init(settings: Settings, log: @escaping @Sendable (String) -> Void) {
        self.settings = settings
        self.files = UpdateFiles(stateDirectory: settings.stateDirectory)
        self.log = log
    }

    var backupPath: String { self.settings.backupDirectory + "/tb-agent.previous" }
    /// A `.deb` update: the installed package rebuilt, to roll back to.
    var previousDebianPath: String { self.settings.backupDirectory + "/tb-agent.previous.deb" }
    /// A `.deb` update: the verified copy that dpkg installs.
    var updateDebianPath: String { self.settings.backupDirectory + "/tb-agent.update.deb" }

    /// Blocking: run it on a thread of its own.
    public func run() -> Result {
        if let problem = self.directoryProblem() { return .failed(problem) }
        if let ticket = self.files.ready() {
            return self.install(ticket)
        }
        if let trial = self.files.trial() {
            // A run interrupted (a power cut, a restart of the unit) during a trial: watch again, a whole window.
            self.log("taking up the trial of \(trial.package) (from \(trial.from)) left by an earlier run")
            return self.watch(trial)
        }
        if HostProcess.exists(self.files.readyPath) {
            let reason = "\(self.files.readyPath) is not an update ticket the agent wrote; removed"
            self.files.remove([self.files.readyPath])
            return .failed(reason)
        }
        return .nothingToDo
    }

    /// The `ota` folder must be a real folder of the state directory's owner (not a link to somewhere root writes).
    func directoryProblem() -> String? {
        var state = stat()
        var ota = stat()
        guard stat(self.settings.stateDirectory, &state) == 0 else {
            return "cannot examine the state directory \(self.settings.stateDirectory): \(AtomicFile.IOError.text(errno))"
        }
        guard lstat(self.files.directory, &ota) == 0 else {
            return errno == ENOENT ? nil : "cannot examine \(self.files.directory): \(AtomicFile.IOError.text(errno))"
        }
        guard ota.st_mode & S_IFMT == S_IFDIR, ota.st_uid == state.st_uid else {
            return "\(self.files.directory) is not a folder of the state directory's owner (a link, or another user's): nothing installed; remove it and let the agent download the package again"
        }
        return nil
    }

    // MARK: install

    /// In an order that a power cut at any step leaves something a rerun finishes: the previous binary is copied
    /// and the trial recorded before anything is replaced, so a rerun that finds the trial for this ticket (the
    /// path unit fires again at boot) keeps that backup, which is the original, and installs again.
    func install(_ ticket: UpdateTicket) -> Result {
        if self.packageFormat() == .debian { return self.installDebian(ticket) }
        let package = ticket.package
        let resumed = self.files.trial()?.package == package && HostProcess.exists(self.backupPath)
        self.log(resumed
            ? "installing \(package) over \(self.settings.target) again (an earlier run was interrupted; the previous version \(ticket.from) is kept)"
            : "installing \(package) over \(self.settings.target) (running \(ticket.from))")
        do throws(AgentError) {
            if !resumed {
                // A rebuilt .deb left by an earlier update that could not roll back is not this update's previous version.
                _ = unlink(self.previousDebianPath)
                try self.keepPrevious()
                try self.files.writeTrial(ticket)
                self.handToAgent(self.files.trialPath)
            }
            try self.copy(from: self.files.packagePath, to: self.settings.target, expect: package)
        } catch {
            // Nothing was replaced (a failed copy leaves the target whole), or it was and the backup holds the original.
            if HostProcess.exists(self.files.trialPath) && resumed {
                return self.rollBack(ticket, because: "the root step could not install it again (\(error.message))")
            }
            let reason = "the root step did not install \(package): \(error.message); \(ticket.from) keeps running"
            self.finish(.failed, package, error: reason, remove: [self.files.readyPath, self.files.packagePath, self.files.metadataPath, self.files.trialPath])
            _ = unlink(self.backupPath)
            return .failed(reason)
        }
        self.files.remove([self.files.readyPath, self.files.packagePath, self.files.metadataPath, self.files.confirmedPath])
        self.log("installed \(package); restarting the agent, which has \(DurationText.format(self.settings.window)) to confirm it")
        self.restart()
        return self.watch(ticket)
    }

    /// Copies the installed binary to the backup folder (root's, 0700), crash-safely.
    func keepPrevious() throws(AgentError) {
        try self.makeBackupDirectory()
        try self.copy(from: self.settings.target, to: self.backupPath, expect: nil)
    }

    func makeBackupDirectory() throws(AgentError) {
        if mkdir(self.settings.backupDirectory, 0o700) != 0 && errno != EEXIST {
            throw AgentError(.storageFailure, "cannot create \(self.settings.backupDirectory) for the previous version: \(AtomicFile.IOError.text(errno))")
        }
    }

    /// What the agent left: a program, or a Debian package (by its first bytes; the hash is checked on the copy).
    func packageFormat() -> FirmwareImage.Format {
        FirmwareImage.format(FirmwareInspector.firstBytes(of: self.files.packagePath, count: 8) ?? [])
    }

    // MARK: install a .deb

    /// A `.deb` goes through dpkg, so that dpkg's records stay true: the installed package is rebuilt as a `.deb`
    /// (the version to roll back to) and the trial recorded before dpkg installs the verified copy. A dpkg that
    /// changed nothing (its lock held too long, a refusal before unpacking) leaves the previous version running
    /// with FAILED; one that stopped halfway is rolled back like a version that does not come online.
    func installDebian(_ ticket: UpdateTicket) -> Result {
        let package = ticket.package
        let packager = self.settings.packager
        let name = self.settings.packageName
        let resumed = self.files.trial()?.package == package && HostProcess.exists(self.previousDebianPath)
        var before: String? = nil
        do throws(AgentError) {
            if !resumed {
                // A binary left by an earlier update that could not roll back is not this update's previous version.
                _ = unlink(self.backupPath)
                before = try packager.installedVersion(name)
                self.log("installing \(package) with dpkg over \(name) \(before ?? "") (running \(ticket.from))")
                try self.makeBackupDirectory()
                let building = self.previousDebianPath + ".new"
                try packager.repack(name, to: building, workDirectory: self.settings.backupDirectory + "/repack")
                guard rename(building, self.previousDebianPath) == 0 else {
                    throw AgentError(.storageFailure, "cannot rename \(building) to \(self.previousDebianPath): \(AtomicFile.IOError.text(errno))")
                }
                try? AtomicFile.syncDirectory(self.settings.backupDirectory)
                try self.files.writeTrial(ticket)
                self.handToAgent(self.files.trialPath)
            } else {
                self.log("installing \(package) with dpkg again (an earlier run was interrupted; \(ticket.from) is kept as \(self.previousDebianPath))")
            }
            try self.copy(from: self.files.packagePath, to: self.updateDebianPath, expect: package)
        } catch {
            _ = unlink(self.updateDebianPath)
            if resumed {
                return self.rollBack(ticket, because: "the root step could not install it again (\(error.message))")
            }
            let reason = "the root step did not install \(package): \(error.message); \(ticket.from) keeps running"
            self.log(reason)
            self.finish(.failed, package, error: reason, remove: [self.files.readyPath, self.files.packagePath, self.files.metadataPath, self.files.trialPath])
            _ = unlink(self.previousDebianPath)
            _ = unlink(self.previousDebianPath + ".new")
            return .failed(reason)
        }
        do throws(AgentError) {
            try packager.install(self.updateDebianPath)
        } catch {
            _ = unlink(self.updateDebianPath)
            if let before, (try? packager.installedVersion(name)) == before {
                let reason = "dpkg did not install \(package): \(error.message); \(ticket.from) keeps running"
                self.log(reason)
                self.finish(.failed, package, error: reason, remove: [self.files.readyPath, self.files.packagePath, self.files.metadataPath, self.files.trialPath])
                _ = unlink(self.previousDebianPath)
                return .failed(reason)
            }
            return self.rollBack(ticket, because: "dpkg could not install it (\(error.message))")
        }
        _ = unlink(self.updateDebianPath)
        self.files.remove([self.files.readyPath, self.files.packagePath, self.files.metadataPath, self.files.confirmedPath])
        self.log("installed \(package) with dpkg; restarting the agent, which has \(DurationText.format(self.settings.window)) to confirm it")
        self.restart()
        return self.watch(ticket)
    }

    /// Copies `source` (a regular file, not followed through a link) over `destination` crash-safely: a temporary
    /// file beside it, fsynced, renamed over it, the folder fsynced. With `expect`, the copy's size and checksum must
    /// be the package's, or nothing is replaced.
    func copy(from source: String, to destination: String, expect package: OTAPackage?) throws(AgentError) {
        // O_NONBLOCK: a FIFO planted in the state directory must not block the root step (refused just below).
        let input = open(source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard input >= 0 else { throw AgentError(.storageFailure, "cannot open \(source): \(AtomicFile.IOError.text(errno))") }
        defer { close(input) }
        var status = stat()
        guard fstat(input, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            throw AgentError(.storageFailure, "\(source) is not a regular file")
        }
        let temporary = HostProcess.parent(of: destination) + "/." + AtomicFile.name(of: destination) + ".new"
        _ = unlink(temporary)
        let output = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o755)
        guard output >= 0 else { throw AgentError(.storageFailure, "cannot create \(temporary): \(AtomicFile.IOError.text(errno))") }
        var checksum = package.map { Checksum($0.algorithm) }
        var failure: String? = nil
        let copied = Self.pump(from: input, source, to: output, temporary, failure: &failure) { checksum?.update($0) }
        if failure == nil, let package, let digest = checksum?.hexDigest(), copied != package.size || digest != package.checksum {
            failure = "\(source) is not the package the agent verified (\(copied) bytes, \(package.algorithm.rawValue) \(digest); expected \(package.size) bytes, \(package.checksum)): it changed after the download"
        }
        if failure == nil, fchmod(output, 0o755) != 0 || fsync(output) != 0 {
            failure = "making \(temporary) durable: \(AtomicFile.IOError.text(errno))"
        }
        close(output)
        if failure == nil, rename(temporary, destination) != 0 {
            failure = "renaming \(temporary) over \(destination): \(AtomicFile.IOError.text(errno))"
        }
        if let failure {
            _ = unlink(temporary)
            throw AgentError(.storageFailure, failure)
        }
        try? AtomicFile.syncDirectory(HostProcess.parent(of: destination))
    }

    /// Copies `input` to `output` to the end, showing each block to `each`; the bytes copied. A read or write that
    /// fails sets `failure` (naming `source` or `destination`) and stops.
    static func pump(
        from input: CInt, _ source: String, to output: CInt, _ destination: String, failure: inout String?,
        each: (UnsafeRawBufferPointer) -> Void
    ) -> Int {
        var copied = 0
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { failure = "reading \(source): \(AtomicFile.IOError.text(errno))"; return copied }
            if n == 0 { return copied }
            buffer.withUnsafeBytes { each(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            var written = 0
            while written < n {
                let w = buffer.withUnsafeBytes { write(output, $0.baseAddress! + written, n - written) }
                if w < 0 && errno == EINTR { continue }
                if w <= 0 { failure = "writing \(destination): \(AtomicFile.IOError.text(w < 0 ? errno : ENOSPC))"; return copied }
                written += w
            }
            copied += n
        }
    }

    /// A file root wrote in the state directory goes to the state directory's owner (the agent reads and removes it).
    func handToAgent(_ path: String) {
        var state = stat()
        guard stat(self.settings.stateDirectory, &state) == 0 else { return }
        _ = lchown(path, state.st_uid, state.st_gid)
    }

    // MARK: the trial

    func watch(_ trial: UpdateTicket) -> Result {
        let version = trial.package.version
        let deadline = Self.now() + self.settings.window
        while Self.now() < deadline {
            if self.files.confirmed() == version { return self.commit(trial) }
            Self.sleep(self.settings.pollInterval)
        }
        if self.files.confirmed() == version { return self.commit(trial) }
        return self.rollBack(trial, because: "\(trial.package.title) \(version) did not stay online for [ota] confirm_after within the window of \(DurationText.format(self.settings.window)) (it did not start, crashed, or could not connect: see `journalctl -u tb-agent`)")
    }

    func commit(_ trial: UpdateTicket) -> Result {
        self.finish(.updated, trial.package, error: nil, remove: [self.files.trialPath, self.files.confirmedPath])
        _ = unlink(self.backupPath)
        _ = unlink(self.previousDebianPath)
        try? AtomicFile.syncDirectory(self.settings.backupDirectory)
        let text = "\(trial.package) confirmed: the update is final, \(trial.from) removed"
        self.log(text)
        return .updated(text)
    }

    func rollBack(_ trial: UpdateTicket, because why: String) -> Result {
        var reason = "rolled back to \(trial.package.title) \(trial.from): \(why)"
        var restored = false
        do throws(AgentError) {
            if HostProcess.exists(self.previousDebianPath) {
                // Installed by dpkg: dpkg puts the previous version back (a downgrade), its records with it.
                try self.settings.packager.install(self.previousDebianPath)
            } else {
                try self.copy(from: self.backupPath, to: self.settings.target, expect: nil)
            }
            restored = true
        } catch {
            reason = "could not roll back to \(trial.from) (\(error.message)); \(trial.package.version) stays installed: \(why)"
        }
        self.log(reason)
        // The backup goes last: until the trial record is gone, a rerun may need it.
        self.finish(.failed, trial.package, error: reason, remove: [self.files.trialPath, self.files.confirmedPath, self.files.readyPath, self.files.packagePath, self.files.metadataPath])
        if restored {
            _ = unlink(self.backupPath)
            _ = unlink(self.previousDebianPath)
            try? AtomicFile.syncDirectory(self.settings.backupDirectory)
        }
        self.restart()
        return .failed(reason)
    }

    /// Leaves the outcome for the agent, then removes `remove`: the outcome first, so that a power cut between the
    /// two leaves a decision, not a trial without its record.
    func finish(_ state: UpdateOutcome.State, _ package: OTAPackage, error: String?, remove: [String]) {
        do throws(AgentError) {
            try self.files.writeOutcome(UpdateOutcome(state: state, package: package, error: error))
            self.handToAgent(self.files.outcomePath)
        } catch {
            self.log("could not leave the outcome for the agent: \(error.message)")
        }
        self.files.remove(remove)
    }

    /// Runs `[ota] restart_command` (with the default, `systemctl reset-failed` first: a crash-looping new version
    /// may have hit the unit's start limit, which refuses a manual start as well).
    func restart() {
        var commands = [self.settings.restartCommand]
        if self.settings.restartCommand == OTASettings.defaultRestartCommand {
            commands.insert(["systemctl", "reset-failed", "tb-agent.service"], at: 0)
        }
        for command in commands {
            guard let name = command.first, let path = Self.resolve(name) else {
                self.log("[ota] restart_command: \(command.first ?? "(empty)") not found in /usr/sbin, /usr/bin, /sbin or /bin")
                continue
            }
            do {
                let outcome = try Subprocess.run(path, arguments: Array(command.dropFirst()), timeoutMilliseconds: 60_000)
                if !outcome.succeeded {
                    self.log("\(command.joined(separator: " ")) ended with \(outcome.summary): \(String(decoding: outcome.output.prefix(300), as: UTF8.self))")
                }
            } catch {
                self.log("\(command.joined(separator: " ")): \(error)")
            }
        }
    }

    static func resolve(_ name: String) -> String? {
        if name.contains("/") { return name }
        for directory in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] where access(directory + "/" + name, X_OK) == 0 {
            return directory + "/" + name
        }
        return nil
    }

    static func now() -> Duration {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return .seconds(t.tv_sec) + .nanoseconds(t.tv_nsec)
    }

    static func sleep(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var left = timespec()
        while nanosleep(&request, &left) != 0 && errno == EINTR { request = left }
    }
}
