import AgentGPIO
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
}

/// `tb-agent --version` prints this on its first line (packaging reads it there), then the libgpiod API the
/// binary was built for ("libgpiod 2.2.1 (v2 API)").
enum AgentVersion {
    static let string = "0.1.0"
}
