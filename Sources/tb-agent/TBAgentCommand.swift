import CAgentVersion
import AgentCommandLine
import AgentGPIO
import AgentPlatform

/// `tb-agent`: the device agent. Each subcommand lives in its own file in this folder.
@main
enum TBAgentCommand {
    static let root = CommandNode(
        CommandConfiguration(
            commandName: "tb-agent",
            abstract: "A ThingsBoard device agent for Linux single-board computers.",
            version: AgentVersion.string + "\n" + LibgpiodBackend.summary,
            subcommands: [
                Run.node,
                Doctor.node,
                Identity.node,
                CheckConfig.node,
                Setup.node,
                Provision.node,
                Status.node,
                Claim.node,
                ApplyUpdate.node,
                Reset.node,
                ConnectTest.node,
                GPIOCommand.node,
                SensorsCommand.node,
                LEDCommand.node,
                ButtonCommand.node,
                BenchPublish.node,
                TOMLDecode.node,
            ]))

    /// The entry point: the process is made non-dumpable before any command reads a secret (no core dump holds the
    /// token or the provision secret; the same user cannot read its memory), then the command line runs.
    static func main() async {
        ProcessHardening.makeNonDumpable()
        await CommandLineProgram.main(Self.root)
    }
}

/// `tb-agent --version` prints this on its first line (packaging reads it there), then the libgpiod API the
/// binary was built for ("libgpiod 2.2.1 (v2 API)").
/// The version lives in `CAgentVersion` (bytes a build step may rewrite: a test's second build of another version).
enum AgentVersion {
    static let string = String(cString: tb_agent_version())
}
