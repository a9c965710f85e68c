import AgentCore
import AgentHost
import AgentPlatform
import Foundation
import TBChecksum
import TBJSON
import Testing

/// The root step in-process, on folders of the test's: what it installs, keeps, restores and leaves for the agent.
@Suite struct UpdateInstallerTests {
    struct Setup {
        let root: URL
        var state: URL { self.root.appendingPathComponent("state") }
        var ota: URL { self.state.appendingPathComponent("ota") }
        var target: URL { self.root.appendingPathComponent("bin/tb-agent") }
        var backup: URL { self.root.appendingPathComponent("backup") }
        let old: [UInt8] = Array("the previous release".utf8)
        let binary: [UInt8] = Array("the new release, a little longer".utf8)
        /// The package: the binary, or (`debian`) a .deb of it as `FakeDpkg` reads one.
        let new: [UInt8]
        var package: OTAPackage { OTAPackage(title: "tb-agent", version: "2.0", size: self.new.count, algorithm: .sha256, checksum: ChecksumAlgorithm.sha256.hex(of: self.new)) }
        var files: UpdateFiles { UpdateFiles(stateDirectory: self.state.path) }

        init(debian: Bool = false) throws {
            self.new = debian ? FakeDpkg.deb("2.0", self.binary) : self.binary
            self.root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("tb-installer-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: self.ota, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: self.root.appendingPathComponent("bin"), withIntermediateDirectories: true)
            try Data(self.old).write(to: self.target)
            try Data(self.new).write(to: self.ota.appendingPathComponent("package.part"))
            try UpdateFiles(stateDirectory: self.state.path).writeReady(UpdateTicket(package: self.package, from: "1.0"))
        }

        /// `restart`: the restart command (a shell line); `window` in milliseconds.
        func installer(restart: String = "true", window: Int = 600) -> UpdateInstaller {
            var settings = UpdateInstaller.Settings(
                stateDirectory: self.state.path, target: self.target.path, backupDirectory: self.backup.path,
                window: .milliseconds(window), restartCommand: ["/bin/sh", "-c", restart])
            settings.pollInterval = .milliseconds(20)
            return UpdateInstaller(settings: settings, log: { _ in })
        }

        func installed() throws -> [UInt8] { [UInt8](try Data(contentsOf: self.target)) }
        func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: self.ota.appendingPathComponent(name).path) }
    }

    @Test("confirmed by the new version: installed, the previous one removed, UPDATED left for the agent, the ticket and the part gone")
    func confirmed() throws {
        let s = try Setup()
        defer { try? FileManager.default.removeItem(at: s.root) }
        let confirm = "printf '{\"version\":\"2.0\"}' > \(s.ota.path)/confirmed"
        let result = s.installer(restart: confirm, window: 10_000).run()
        guard case .updated = result else { Issue.record("\(result)"); return }
        #expect(try s.installed() == s.new)
        #expect(!FileManager.default.fileExists(atPath: s.backup.appendingPathComponent("tb-agent.previous").path))
        #expect(s.files.outcome() == UpdateOutcome(state: .updated, package: s.package))
        for name in ["ready", "trial", "confirmed", "package.part"] { #expect(!s.exists(name), "\(name) left") }
        let mode = try FileManager.default.attributesOfItem(atPath: s.target.path)[.posixPermissions] as? Int
        #expect(mode == 0o755)
    }

    @Test("no confirmation within the window: the previous binary is back, restarted, and FAILED says it rolled back and why")
    func rolledBack() throws {
        let s = try Setup()
        defer { try? FileManager.default.removeItem(at: s.root) }
        let restarts = s.root.appendingPathComponent("restarts")
        let result = s.installer(restart: "echo x >> \(restarts.path)", window: 300).run()
        guard case .failed(let reason) = result else { Issue.record("\(result)"); return }
        #expect(reason.hasPrefix("rolled back to tb-agent 1.0: tb-agent 2.0 did not stay online"), "\(reason)")
        #expect(try s.installed() == s.old)
        #expect(s.files.outcome()?.state == .failed)
        #expect(s.files.outcome()?.error == reason)
        #expect(try String(contentsOf: restarts, encoding: .utf8) == "x\nx\n", "one restart for the new version, one for the old")
        for name in ["ready", "trial", "confirmed", "package.part"] { #expect(!s.exists(name), "\(name) left") }
    }

    @Test("a part that changed after the agent verified it is not installed: nothing replaced, FAILED says so")
    func changedPart() throws {
        let s = try Setup()
        defer { try? FileManager.default.removeItem(at: s.root) }
        try Data(s.new.map { $0 ^ 1 }).write(to: s.ota.appendingPathComponent("package.part"))
        let result = s.installer().run()
        guard case .failed(let reason) = result else { Issue.record("\(result)"); return }
        #expect(reason.contains("is not the package the agent verified"), "\(reason)")
        #expect(try s.installed() == s.old)
        #expect(!s.exists("ready") && !s.exists("trial"))
        #expect(s.files.outcome()?.state == .failed)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: s.target.deletingLastPathComponent().path)
        #expect(leftovers == ["tb-agent"], "a temporary file was left: \(leftovers)")
    }

    @Test("a trial left by an interrupted run is taken up: confirmed, it is made final")
    func takenUp() throws {
        let s = try Setup()
        defer { try? FileManager.default.removeItem(at: s.root) }
        try FileManager.default.removeItem(at: s.ota.appendingPathComponent("ready"))
        try Data(s.new).write(to: s.target)
        try FileManager.default.createDirectory(at: s.backup, withIntermediateDirectories: true)
        try Data(s.old).write(to: s.backup.appendingPathComponent("tb-agent.previous"))
        try s.files.writeTrial(UpdateTicket(package: s.package, from: "1.0"))
        try s.files.confirm(version: "2.0")
        let result = s.installer().run()
        guard case .updated = result else { Issue.record("\(result)"); return }
        #expect(try s.installed() == s.new)
        #expect(!FileManager.default.fileExists(atPath: s.backup.appendingPathComponent("tb-agent.previous").path))
    }

    @Test("a power cut after the backup and the trial were written and the new binary installed: the rerun at boot keeps the original as the backup, so a rollback still restores it")
    func interruptedInstall() throws {
        let s = try Setup()
        defer { try? FileManager.default.removeItem(at: s.root) }
        // What the first run left: backup (the original), trial, the new binary in place, the ticket and the part still there.
        try FileManager.default.createDirectory(at: s.backup, withIntermediateDirectories: true)
        try Data(s.old).write(to: s.backup.appendingPathComponent("tb-agent.previous"))
        try s.files.writeTrial(UpdateTicket(package: s.package, from: "1.0"))
        try Data(s.new).write(to: s.target)
        guard case .failed(let reason) = s.installer(window: 200).run() else { Issue.record("no rollback"); return }
        #expect(reason.hasPrefix("rolled back to tb-agent 1.0"), "\(reason)")
        #expect(try s.installed() == s.old, "the rerun took the new binary for the previous one")
        #expect(!FileManager.default.fileExists(atPath: s.backup.appendingPathComponent("tb-agent.previous").path))
        for name in ["ready", "trial", "package.part"] { #expect(!s.exists(name), "\(name) left") }
    }

    @Test("an ota folder that is a link is refused and nothing is touched; no ticket is nothing to do")
    func refusals() throws {
        let s = try Setup()
        defer { try? FileManager.default.removeItem(at: s.root) }
        let elsewhere = s.root.appendingPathComponent("elsewhere")
        try FileManager.default.moveItem(at: s.ota, to: elsewhere)
        try FileManager.default.createSymbolicLink(at: s.ota, withDestinationURL: elsewhere)
        guard case .failed(let reason) = s.installer().run() else { Issue.record("installed through a link"); return }
        #expect(reason.contains("is not a folder of the state directory's owner"), "\(reason)")
        #expect(try s.installed() == s.old)
        try FileManager.default.removeItem(at: s.ota)
        try FileManager.default.createDirectory(at: s.ota, withIntermediateDirectories: true)
        #expect(s.installer().run() == .nothingToDo)
        // A FIFO in the package's place (the agent's user can plant one) is refused, not waited on.
        try s.files.writeReady(UpdateTicket(package: s.package, from: "1.0"))
        #expect(mkfifo(s.ota.appendingPathComponent("package.part").path, 0o600) == 0)
        guard case .failed(let fifo) = s.installer().run() else { Issue.record("installed a FIFO"); return }
        #expect(fifo.contains("is not a regular file"), "\(fifo)")
        #expect(try s.installed() == s.old)
    }
}

/// dpkg as state the test reads: a ".deb" here is `!<arch>\n`, its version, a newline, then the binary's bytes;
/// installing one writes the binary over the target and records its version; rebuilding writes the installed state
/// as such a file. `failing` makes installing that version fail, having changed nothing or stopped halfway.
final class FakeDpkg: SystemPackager, @unchecked Sendable {
    enum Failure { case nothingChanged, halfway }
    let target: String
    let lock = NSLock()
    var version: String?
    var status = "ii"
    var installs: [String] = []
    var failing: (version: String, failure: Failure)?

    init(target: String, version: String?) {
        self.target = target
        self.version = version
    }

    static func deb(_ version: String, _ binary: [UInt8]) -> [UInt8] { Array("!<arch>\n\(version)\n".utf8) + binary }

    func installedVersion(_ name: String) throws(AgentError) -> String {
        self.lock.lock(); defer { self.lock.unlock() }
        guard let version else { throw AgentError(.storageFailure, "dpkg does not know \(name): this board's agent was not installed from a .deb") }
        guard self.status == "ii" else { throw AgentError(.storageFailure, "\(name) \(version) is not fully installed (dpkg status \"\(self.status)\")") }
        return version
    }

    func repack(_ name: String, to path: String, workDirectory: String) throws(AgentError) {
        let version = try self.installedVersion(name)
        guard let binary = try? Data(contentsOf: URL(fileURLWithPath: self.target)),
              (try? Data(Self.deb(version, [UInt8](binary))).write(to: URL(fileURLWithPath: path))) != nil else {
            throw AgentError(.storageFailure, "cannot rebuild \(name)")
        }
    }

    func install(_ path: String) throws(AgentError) {
        self.lock.lock(); defer { self.lock.unlock() }
        guard let bytes = try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path))), bytes.starts(with: Array("!<arch>\n".utf8)),
              let end = bytes.dropFirst(8).firstIndex(of: 10) else { throw AgentError(.storageFailure, "\(path) is not a .deb") }
        let version = String(decoding: bytes[8..<end], as: UTF8.self)
        let write = { () throws(AgentError) in
            guard (try? Data(bytes[(end + 1)...]).write(to: URL(fileURLWithPath: self.target))) != nil else { throw AgentError(.storageFailure, "cannot write") }
        }
        if let failing = self.failing, failing.version == version {
            if failing.failure == .halfway {
                try write()
                (self.version, self.status) = (version, "iF")
            }
            throw AgentError(.storageFailure, "dpkg --install \(path) ended with exit status 1: post-installation script returned error exit status 1")
        }
        try write()
        (self.version, self.status) = (version, "ii")
        self.installs.append(version)
    }
}

/// The root step with a `.deb`: dpkg installs it and, to roll back, the installed version rebuilt before.
@Suite struct DebianUpdateInstallerTests {
    struct Setup {
        var base: UpdateInstallerTests.Setup
        let dpkg: FakeDpkg
        var backup: URL { self.base.backup }

        init(installed: String? = "1.0") throws {
            self.base = try UpdateInstallerTests.Setup(debian: true)
            self.dpkg = FakeDpkg(target: self.base.target.path, version: installed)
        }

        func installer(restart: String = "true", window: Int = 600) -> UpdateInstaller {
            var settings = self.base.installer(restart: restart, window: window).settings
            settings.packager = self.dpkg
            return UpdateInstaller(settings: settings, log: { _ in })
        }

        func leftInBackup() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: self.backup.path)) ?? []).sorted() }
    }

    @Test("confirmed: dpkg installed the new version, the rebuilt previous one is removed, UPDATED")
    func confirmed() throws {
        let s = try Setup()
        defer { try? FileManager.default.removeItem(at: s.base.root) }
        let confirm = "printf '{\"version\":\"2.0\"}' > \(s.base.ota.path)/confirmed"
        let result = s.installer(restart: confirm, window: 10_000).run()
        guard case .updated = result else { Issue.record("\(result)"); return }
        #expect(s.dpkg.installs == ["2.0"] && s.dpkg.version == "2.0")
        #expect(try s.base.installed() == s.base.binary)
        #expect(s.leftInBackup().isEmpty, "\(s.leftInBackup())")
        #expect(s.base.files.outcome()?.state == .updated)
        for name in ["ready", "trial", "confirmed", "package.part"] { #expect(!s.base.exists(name), "\(name) left") }
    }

    @Test("no confirmation: dpkg installs the installed version as it was rebuilt before, and FAILED says it rolled back")
    func rolledBack() throws {
        let s = try Setup()
        defer { try? FileManager.default.removeItem(at: s.base.root) }
        let result = s.installer(window: 300).run()
        guard case .failed(let reason) = result else { Issue.record("\(result)"); return }
        #expect(reason.hasPrefix("rolled back to tb-agent 1.0: tb-agent 2.0 did not stay online"), "\(reason)")
        #expect(s.dpkg.installs == ["2.0", "1.0"] && s.dpkg.version == "1.0")
        #expect(try s.base.installed() == s.base.old, "the previous binary is back through dpkg")
        #expect(s.leftInBackup().isEmpty, "\(s.leftInBackup())")
        #expect(s.base.files.outcome()?.error == reason)
    }

    @Test("dpkg fails having changed nothing: no rollback, FAILED with dpkg's words; halfway: rolled back to the rebuilt version")
    func dpkgFails() throws {
        let s = try Setup()
        defer { try? FileManager.default.removeItem(at: s.base.root) }
        s.dpkg.failing = ("2.0", .nothingChanged)
        guard case .failed(let reason) = s.installer().run() else { Issue.record("installed"); return }
        #expect(reason.contains("dpkg did not install tb-agent 2.0") && reason.contains("post-installation script") && reason.hasSuffix("1.0 keeps running"), "\(reason)")
        #expect(s.dpkg.installs.isEmpty && s.dpkg.version == "1.0")
        #expect(try s.base.installed() == s.base.old)
        #expect(s.leftInBackup().isEmpty, "\(s.leftInBackup())")
        for name in ["ready", "trial", "package.part"] { #expect(!s.base.exists(name), "\(name) left") }

        let h = try Setup()
        defer { try? FileManager.default.removeItem(at: h.base.root) }
        h.dpkg.failing = ("2.0", .halfway)
        guard case .failed(let halfway) = h.installer().run() else { Issue.record("installed"); return }
        #expect(halfway.hasPrefix("rolled back to tb-agent 1.0: dpkg could not install it"), "\(halfway)")
        #expect(h.dpkg.installs == ["1.0"] && h.dpkg.version == "1.0" && h.dpkg.status == "ii")
        #expect(try h.base.installed() == h.base.old)
    }

    @Test("an agent that dpkg does not know is not updated with a .deb: FAILED with the fix, nothing touched")
    func notFromDebian() throws {
        let s = try Setup(installed: nil)
        defer { try? FileManager.default.removeItem(at: s.base.root) }
        guard case .failed(let reason) = s.installer().run() else { Issue.record("installed"); return }
        #expect(reason.contains("was not installed from a .deb") && reason.hasSuffix("1.0 keeps running"), "\(reason)")
        #expect(try s.base.installed() == s.base.old)
        #expect(s.leftInBackup().isEmpty && !s.base.exists("trial") && !s.base.exists("ready"))
    }

    @Test("a power cut during dpkg's install: the rerun finds the trial and the rebuilt previous version, installs again, and can still roll back to the original")
    func interrupted() throws {
        let s = try Setup()
        defer { try? FileManager.default.removeItem(at: s.base.root) }
        try FileManager.default.createDirectory(at: s.backup, withIntermediateDirectories: true)
        try Data(FakeDpkg.deb("1.0", s.base.old)).write(to: s.backup.appendingPathComponent("tb-agent.previous.deb"))
        try s.base.files.writeTrial(UpdateTicket(package: s.base.package, from: "1.0"))
        (s.dpkg.version, s.dpkg.status) = ("2.0", "iU")
        guard case .failed(let reason) = s.installer(window: 200).run() else { Issue.record("no rollback"); return }
        #expect(reason.hasPrefix("rolled back to tb-agent 1.0: tb-agent 2.0 did not stay online"), "\(reason)")
        #expect(s.dpkg.installs == ["2.0", "1.0"])
        #expect(try s.base.installed() == s.base.old)
    }
}

/// What an earlier update that could not roll back left in the backup folder is not the next update's previous version.
@Suite struct StaleBackupTests {
    @Test("a binary update ignores a rebuilt .deb left in the backup folder: its rollback restores the binary, dpkg untouched")
    func binaryUpdate() throws {
        let s = try UpdateInstallerTests.Setup()
        defer { try? FileManager.default.removeItem(at: s.root) }
        try FileManager.default.createDirectory(at: s.backup, withIntermediateDirectories: true)
        try Data(FakeDpkg.deb("0.5", Array("stale".utf8))).write(to: s.backup.appendingPathComponent("tb-agent.previous.deb"))
        let dpkg = FakeDpkg(target: s.target.path, version: "1.0")
        var settings = s.installer(window: 200).settings
        settings.packager = dpkg
        guard case .failed(let reason) = UpdateInstaller(settings: settings, log: { _ in }).run() else { Issue.record("no rollback"); return }
        #expect(reason.hasPrefix("rolled back to tb-agent 1.0"), "\(reason)")
        #expect(dpkg.installs.isEmpty)
        #expect(try s.installed() == s.old)
    }

    @Test("a .deb update ignores a binary left in the backup folder: dpkg rolls back to the rebuilt installed package")
    func debianUpdate() throws {
        let s = try DebianUpdateInstallerTests.Setup()
        defer { try? FileManager.default.removeItem(at: s.base.root) }
        try FileManager.default.createDirectory(at: s.backup, withIntermediateDirectories: true)
        let stale = s.backup.appendingPathComponent("tb-agent.previous")
        try Data("stale".utf8).write(to: stale)
        // Seen at the first restart (the new version installed): the stale binary must be gone by then.
        let seen = s.base.root.appendingPathComponent("seen")
        let restart = "[ -e \(seen.path) ] || { if [ -e \(stale.path) ]; then echo stale; else echo gone; fi > \(seen.path); }"
        guard case .failed(let reason) = s.installer(restart: restart, window: 200).run() else { Issue.record("no rollback"); return }
        #expect(reason.hasPrefix("rolled back to tb-agent 1.0"), "\(reason)")
        #expect(try String(contentsOf: seen, encoding: .utf8) == "gone\n")
        #expect(s.dpkg.installs == ["2.0", "1.0"])
        #expect(try s.base.installed() == s.base.old)
        #expect(s.leftInBackup().isEmpty, "\(s.leftInBackup())")
    }
}

@Suite struct SubprocessTests {
    @Test func statusOutputAndSignals() throws {
        let ok = try Subprocess.run("/bin/sh", arguments: ["-c", "echo out; echo err >&2; exit 3"])
        #expect(ok.status == 3 && ok.signal == nil && !ok.timedOut)
        #expect(String(decoding: ok.output, as: UTF8.self) == "out\nerr\n")
        let killed = try Subprocess.run("/bin/sh", arguments: ["-c", "kill -SEGV $$"])
        #expect(killed.status == nil && killed.signal == SIGSEGV)
        #expect(killed.summary == "killed by signal \(SIGSEGV)")
    }

    @Test("a timeout or a cancellation kills what the child started as well (its process group), not the child alone")
    func killsTheGroup() throws {
        for cancel in [false, true] {
            let started = ContinuousClock.now
            let outcome = try Subprocess.run(
                "/bin/sh", arguments: ["-c", "sleep 30 & echo $!; sleep 30 | cat; wait"], timeoutMilliseconds: cancel ? 10_000 : 400,
                isCancelled: { cancel && ContinuousClock.now - started > .milliseconds(400) })
            #expect(cancel ? outcome.cancelled : outcome.timedOut)
            let text = String(decoding: outcome.output, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
            let grandchild = try #require(pid_t(text), "no pid printed: \(text)")
            // Killed with the group: gone (reaped by init) within a moment, not in 30 s.
            var gone = false
            for _ in 0..<100 where !gone {
                gone = kill(grandchild, 0) != 0
                if !gone { usleep(20_000) }
            }
            #expect(gone, "the background sleep \(grandchild) outlived its group's kill")
        }
    }

    @Test func boundedInTimeAndOutput() throws {
        let slow = try Subprocess.run("/bin/sh", arguments: ["-c", "echo started; exec sleep 30"], timeoutMilliseconds: 300)
        #expect(slow.timedOut && slow.signal == SIGKILL)
        #expect(String(decoding: slow.output, as: UTF8.self) == "started\n")
        let loud = try Subprocess.run("/bin/sh", arguments: ["-c", "head -c 100000 /dev/zero"], outputLimit: 1000)
        #expect(loud.output.count == 1000 && loud.status == 0)
        let quiet = try Subprocess.run("/bin/sh", arguments: ["-c", "exec >&- 2>&-; sleep 30"], timeoutMilliseconds: 300)
        #expect(quiet.timedOut, "a child that closed its output and runs on is killed at the deadline")
        // A program that is not there: posix_spawn says so (ENOENT), except under qemu-user, which runs the child
        // as a fork and can only let it exit 127, as a shell does; the callers treat both as "does not run".
        do {
            let missing = try Subprocess.run("/no/such/program", arguments: [])
            #expect(missing.status == 127, "\(missing)")
        } catch {
            #expect(error.errno == ENOENT)
        }
        // Its owner stopping: killed within the polling interval, not at the time limit.
        let started = ContinuousClock.now
        let stopped = try Subprocess.run("/bin/sleep", arguments: ["30"], timeoutMilliseconds: 30_000, isCancelled: { ContinuousClock.now - started > .milliseconds(100) })
        #expect(stopped.cancelled && !stopped.timedOut && stopped.signal == SIGKILL)
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(stopped.summary.contains("the agent is stopping"))
        let env = try Subprocess.run("/usr/bin/env", arguments: [])
        #expect(String(decoding: env.output, as: UTF8.self) == "PATH=/usr/sbin:/usr/bin:/sbin:/bin\nLC_ALL=C\n", "the agent's environment leaked")
    }
}
