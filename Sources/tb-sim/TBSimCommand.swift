import ArgumentParser

/// `tb-sim`: a ThingsBoard device-API simulator for development, demos and tests.
@main
struct TBSimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tb-sim",
        abstract: "Simulates ThingsBoard's device-side MQTT API on loopback."
    )

    func run() async throws {
        throw ValidationError("tb-sim is being written (issue 3)")
    }
}
