import AgentCommandLine
import AgentCore
import AgentHost
import AgentPlatform
import Glibc

/// `tb-agent apply-update`: the root step of a firmware update (`UpdateInstaller`). The package's
/// `tb-agent-update.path` starts it (as `tb-agent-update.service`) when the agent leaves `state_dir/ota/ready`, and
/// at boot while a trial is unfinished.
struct ApplyUpdate: AsyncCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply-update",
        abstract: "Install the firmware package the agent downloaded and checked, and roll back if it does not stay online (root).",
        discussion: """
            Run as root by tb-agent-update.service when the agent leaves state_dir/ota/ready. A binary: copies \
            this binary to [ota] backup_directory and installs the package over it (crash-safely, only if its \
            checksum is still the one verified). A .deb: rebuilds the installed tb-agent package as a .deb in \
            [ota] backup_directory, then installs the verified copy with dpkg (configuration files kept). Then \
            runs [ota] restart_command and waits up to [ota] window for the new version to confirm that it \
            stayed online for [ota] confirm_after. Then the update is final (UPDATED); otherwise the previous \
            version is put back (the binary, or the rebuilt .deb with dpkg), the agent restarted, and FAILED \
            reported with why. \
            Exit statuses: 0 updated or nothing to do, 1 refused or rolled back (the agent reports why), \
            77 not root, 78 configuration.
            """)

    static var arguments: [ArgumentSpec] { GlobalOptions.arguments }

    var global: GlobalOptions

    init(_ values: ParsedValues) throws {
        self.global = try GlobalOptions(values)
    }

    func run() async throws {
        let config = try LinkCommand.loadConfiguration(self.global)
        guard config.ota.enabled else {
            CommandOutput.error("tb-agent apply-update: [ota] enabled = false in \(self.global.config): nothing is installed")
            throw ExitCode(ExitStatus.config)
        }
        let target = Self.ownExecutable()
        guard let target else {
            CommandOutput.error("tb-agent apply-update: cannot tell this program's own path (/proc/self/exe), which is the binary to replace")
            throw ExitCode(ExitStatus.software)
        }
        // The binary and the backup folder are root's: without the rights to replace them nothing is touched.
        guard access(HostProcess.parent(of: target), W_OK) == 0 else {
            CommandOutput.error("tb-agent apply-update: cannot replace \(target) (\(String(cString: strerror(errno)))); it runs as root from tb-agent-update.service")
            throw ExitCode(ExitStatus.noPermission)
        }
        let settings = UpdateInstaller.Settings(
            stateDirectory: config.device.stateDir, target: target, backupDirectory: config.ota.backupDirectory,
            window: config.ota.window, restartCommand: config.ota.restartCommand)
        let installer = UpdateInstaller(settings: settings, log: { HostProcess.writeStandardError("tb-agent apply-update: \($0)\n") })
        let result = await OffPool.run { installer.run() }
        switch result {
        case .nothingToDo:
            print("nothing to install: no update ticket or trial in \(config.device.stateDir)/ota")
        case .updated(let text):
            print(text)
        case .failed(let reason):
            print(reason)
            throw ExitCode(1)
        }
    }

    static func ownExecutable() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
