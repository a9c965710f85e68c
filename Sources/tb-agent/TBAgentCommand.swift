import ArgumentParser

/// `tb-agent`: the device agent. Each subcommand lives in its own file in this folder.
@main
struct TBAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tb-agent",
        abstract: "A ThingsBoard device agent for Linux single-board computers.",
        version: AgentVersion.string,
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
        ]
    )
}

enum AgentVersion {
    static let string = "0.1.0"
}
