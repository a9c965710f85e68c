import AgentGPIO
import AgentPlatform
import ArgumentParser

/// `tb-agent`: the device agent. Each subcommand lives in its own file in this folder.
@main
struct TBAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tb-agent",
        abstract: "A ThingsBoard device agent for Linux single-board computers.",
        version: AgentVersion.string + "\n" + LibgpiodBackend.summary,
        subcommands: [
            Run.self,
            Doctor.self,
            Identity.self,
            CheckConfig.self,
            Setup.self,
            Provision.self,
            Status.self,
            Reset.self,
            ConnectTest.self,
            GPIOCommand.self,
            SensorsCommand.self,
            LEDCommand.self,
            ButtonCommand.self,
            BenchPublish.self,
            TOMLDecode.self,
        ]
    )

    /// The entry point: the process is made non-dumpable before any command reads a secret (no core dump holds the
    /// token or the provision secret; the same user cannot read its memory), then ArgumentParser runs the command.
    static func main() async {
        ProcessHardening.makeNonDumpable()
        await Self.main(nil)
    }
}

/// `tb-agent --version` prints this on its first line (packaging reads it there), then the libgpiod API the
/// binary was built for ("libgpiod 2.2.1 (v2 API)").
enum AgentVersion {
    static let string = "0.1.0"
}
