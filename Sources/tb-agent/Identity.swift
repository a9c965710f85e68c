import AgentCommandLine
import AgentConfig
import AgentCore
import AgentHost
import AgentPlatform

struct Identity: AsyncCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity",
        abstract: "Print the device name derived from the hardware.",
        discussion: """
            Only [device] is read from the configuration ([server] and [provisioning] may be absent). Without \
            --config and without /etc/tb-agent/config.toml, the defaults apply (name_template "{id}", sysroot "/").
            """)

    static let explain = Flag("explain", help: "List every source tried, what it found, and why it was used or skipped.")

    static var arguments: [ArgumentSpec] { GlobalOptions.arguments + [Self.explain.spec] }

    var global: GlobalOptions
    var explain: Bool

    init(_ values: ParsedValues) throws {
        self.global = try GlobalOptions(values)
        self.explain = values.isSet(Self.explain)
    }

    func run() async throws {
        var notes: [String] = []
        let settings: DeviceSettings
        if self.global.config == AgentConfiguration.defaultPath
            && !HostProcess.exists(self.global.config)
        {
            settings = DeviceSettings()
            notes.append("config: \(self.global.config) does not exist; using the [device] defaults")
        } else {
            do {
                settings = try ConfigurationLoader.loadDeviceSettings(path: self.global.config)
                notes.append("config: \(self.global.config)")
            } catch {
                CommandOutput.error(error.description)
                throw ExitCode(ExitStatus.config)
            }
        }
        do {
            let identity = try HardwareIdentity.derive(settings)
            print(identity.name)
            if self.explain {
                for line in notes + identity.explanation { print(line) }
            }
        } catch {
            CommandOutput.error("tb-agent identity: \(error.message)")
            throw ExitCode(error.code == .invalidConfiguration ? ExitStatus.config : ExitStatus.unavailable)
        }
    }
}

/// Writing to standard error (results go to standard output, everything else here).
enum CommandOutput {
    static func error(_ text: String) {
        HostProcess.writeStandardError(text.hasSuffix("\n") ? text : text + "\n")
    }
}
